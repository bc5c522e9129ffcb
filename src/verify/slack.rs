//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`, timestamp in
//! `X-Slack-Request-Timestamp`. The signing secret looks like hex but is used as plain text.
//! The Events API's `url_verification` is answered with its `challenge`.

use super::hmac::{HmacParams, HmacScheme, Template, TimeFormat, TimestampRule};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Answer, Message, Scheme, SignError, Signed, VerifyError};
use crate::event_id::{EventIdRule, IdSource};
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "slack",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(Slack(HmacScheme::new(params(keys.tolerance), keys.secrets))),
    tolerance: Some(Duration::from_secs(300)),
    // Slash commands and interactivity carry no event id: identical bodies are one event.
    event_id: || EventIdRule {
        from: Some(IdSource::JsonPointer("/event_id".into())),
        fallback_body_sha256: true,
    },
    event_type: || Some(EventTypeRule::json_pointer("/event/type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

pub fn params(tolerance: Duration) -> HmacParams {
    HmacParams {
        algorithm: Algorithm::Sha256,
        signature_header: "X-Slack-Signature".into(),
        encoding: Encoding::Hex,
        prefix: "v0=".into(),
        template: Template::parse("v0:{timestamp}:{body}").expect("valid template"),
        timestamp: Some(TimestampRule {
            header: "x-slack-request-timestamp".into(),
            tolerance,
            format: TimeFormat::Seconds,
        }),
        id_header: None,
    }
}

struct Slack(HmacScheme);

impl Scheme for Slack {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        self.0.verify(headers, body, now)
    }

    fn sign(&self, message: Message, key: Option<&str>) -> Result<Signed, SignError> {
        self.0.sign(message, key)
    }

    /// Slack will not enable an Events API endpoint until it echoes the `challenge`.
    fn handshake(&self, _: &HeaderMap, body: &[u8]) -> Option<Answer> {
        #[derive(Deserialize)]
        struct UrlVerification<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            challenge: Option<String>,
        }
        let request: UrlVerification = serde_json::from_slice(body).ok()?;
        match (request.kind, request.challenge) {
            ("url_verification", Some(challenge)) => {
                Some(Answer::Json(json!({ "challenge": challenge })))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/slack.json");

    #[test]
    fn published_vectors_verify() {
        fixtures::assert_vectors(&PRESET, FIXTURES, "wrong");
    }

    #[test]
    fn a_replayed_request_is_refused_after_five_minutes() {
        fixtures::assert_stale_refused(&PRESET, FIXTURES);
    }

    #[test]
    fn signing_verifies() {
        fixtures::assert_signed_verifies(&PRESET, FIXTURES, None);
    }

    #[test]
    fn only_url_verification_is_answered() {
        let slack = Slack(HmacScheme::new(params(Duration::ZERO), &["s".into()]));
        let none = HeaderMap::new();
        let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            slack.handshake(&none, body),
            Some(Answer::Json(
                json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
            ))
        );
        assert_eq!(
            slack.handshake(&none, br#"{"type":"event_callback"}"#),
            None
        );
        assert_eq!(slack.handshake(&none, b"command=%2Fx"), None);
    }
}
