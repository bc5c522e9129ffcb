//! Meta (WhatsApp, Messenger, Instagram): `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the
//! body under the app secret; no timestamp and no delivery id, so identical bodies are one event.
//! Subscribing an endpoint is a `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`,
//! answered with the challenge when the token is the configured `verify_token`.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Answer, Challenge, Message, Scheme, SignError, Signed, VerifyError};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

pub const PRESET: Preset = Preset {
    name: "meta",
    keys: KeyKind::Secrets,
    extra_keys: &["verify_token"],
    build: |keys| {
        let params = HmacParams::body(
            Algorithm::Sha256,
            "X-Hub-Signature-256",
            Encoding::Hex,
            "sha256=",
        );
        scheme(Meta {
            hmac: HmacScheme::new(params, keys.secrets),
            verify_token: keys.verify_token.map(str::to_string),
        })
    },
    tolerance: None,
    event_id: EventIdRule::body_sha256,
    event_type: || Some(EventTypeRule::json_pointer("/object")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Meta {
    hmac: HmacScheme,
    /// Without one, every subscription request is refused.
    verify_token: Option<String>,
}

impl Scheme for Meta {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        self.hmac.verify(headers, body, now)
    }

    fn sign(&self, message: Message, key: Option<&str>) -> Result<Signed, SignError> {
        self.hmac.sign(message, key)
    }

    fn challenge(&self, query: &str) -> Challenge {
        let (mut mode, mut token, mut challenge) = (None, None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "hub.mode" => mode = Some(value),
                "hub.verify_token" => token = Some(value),
                "hub.challenge" => challenge = Some(value),
                _ => {}
            }
        }
        let expected = self.verify_token.as_deref().unwrap_or_default();
        let token_matches = token.is_some_and(|token| {
            !expected.is_empty() && bool::from(token.as_bytes().ct_eq(expected.as_bytes()))
        });
        match (mode.as_deref(), challenge) {
            (Some("subscribe"), Some(challenge)) if token_matches => {
                Challenge::Answer(Answer::Text(challenge.into_owned()))
            }
            _ => Challenge::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/meta.json");

    #[test]
    fn fixture_passes() {
        fixtures::assert_preset(&PRESET, FIXTURES, "wrong");
    }

    #[test]
    fn the_subscription_challenge_needs_the_verify_token() {
        let v = &fixtures::load(FIXTURES)[0];
        // fixtures::build configures "fixture-verify-token".
        let meta = fixtures::build(&PRESET, v, std::slice::from_ref(&v.secret));
        let ok =
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=fixture-verify-token";
        assert_eq!(
            meta.challenge(ok),
            Challenge::Answer(Answer::Text("1158201444".into()))
        );
        for refused in [
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess",
            "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=fixture-verify-token",
            "hub.mode=subscribe&hub.verify_token=fixture-verify-token",
            "",
        ] {
            assert_eq!(meta.challenge(refused), Challenge::Refused, "{refused}");
        }
    }
}
