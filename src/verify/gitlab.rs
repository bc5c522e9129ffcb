//! GitLab: `X-Gitlab-Token` carries the webhook's secret token itself, compared in constant time.
//! It proves the sender, not the body, and carries no timestamp.

use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Message, Scheme, SignError, Signed, VerifyError, required};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

const HEADER: &str = "x-gitlab-token";

pub const PRESET: Preset = Preset {
    name: "gitlab",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(Gitlab(keys.secrets.to_vec())),
    tolerance: None,
    // `Idempotency-Key` is the same across retries; older GitLab sends only the event UUID.
    event_id: || EventIdRule::first_header(&["Idempotency-Key", "X-Gitlab-Event-UUID"]),
    event_type: || Some(EventTypeRule::header("X-Gitlab-Event")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Gitlab(Vec<String>);

impl Scheme for Gitlab {
    fn verify(&self, headers: &HeaderMap, _: &[u8], _: i64) -> Result<(), VerifyError> {
        let token = required(headers, HEADER)?.as_bytes();
        // Every secret is compared, so the time taken does not tell which one matched.
        let matches = self.0.iter().fold(false, |found, secret| {
            found | bool::from(secret.as_bytes().ct_eq(token))
        });
        match matches {
            true => Ok(()),
            false => Err(VerifyError::NoMatchingSignature),
        }
    }

    fn sign(&self, message: Message, _: Option<&str>) -> Result<Signed, SignError> {
        Ok(Signed {
            headers: vec![
                (HEADER.to_string(), self.0[0].clone()),
                ("Idempotency-Key".to_string(), message.id.to_string()),
            ],
            body: message.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/gitlab.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
