//! Twitch EventSub: `Twitch-Eventsub-Message-Signature: sha256=<hex>`, HMAC-SHA256 under the
//! subscription's secret of the message id, the RFC 3339 timestamp and the body, concatenated;
//! messages older than 10 minutes are refused. `webhook_callback_verification` (itself signed)
//! is answered with its `challenge` as plain text.

use super::hmac::{HmacParams, HmacScheme, Template, TimeFormat, TimestampRule};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Answer, Message, Scheme, SignError, Signed, VerifyError};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde_json::Value;
use std::time::Duration;

const ID: &str = "twitch-eventsub-message-id";

pub const PRESET: Preset = Preset {
    name: "twitch",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| {
        let params = HmacParams {
            template: Template::parse("{id}{timestamp}{body}").expect("a valid template"),
            timestamp: Some(TimestampRule {
                header: "twitch-eventsub-message-timestamp".into(),
                tolerance: keys.tolerance,
                format: TimeFormat::Rfc3339,
            }),
            id_header: Some(ID.into()),
            ..HmacParams::body(
                Algorithm::Sha256,
                "twitch-eventsub-message-signature",
                Encoding::Hex,
                "sha256=",
            )
        };
        scheme(Twitch(HmacScheme::new(params, keys.secrets)))
    },
    tolerance: Some(Duration::from_secs(600)),
    // The same on a retry.
    event_id: || EventIdRule::header(ID),
    event_type: || Some(EventTypeRule::header("Twitch-Eventsub-Subscription-Type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Twitch(HmacScheme);

impl Scheme for Twitch {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        self.0.verify(headers, body, now)
    }

    /// Signed as a `notification`, the message type of events.
    fn sign(&self, message: Message, key: Option<&str>) -> Result<Signed, SignError> {
        let signed = self.0.sign(message, key)?;
        Ok(signed.header("Twitch-Eventsub-Message-Type", "notification"))
    }

    fn handshake(&self, headers: &HeaderMap, body: &[u8]) -> Option<Answer> {
        let kind = headers.get("twitch-eventsub-message-type")?;
        if kind != "webhook_callback_verification" {
            return None;
        }
        let request: Value = serde_json::from_slice(body).ok()?;
        Some(Answer::Text(request["challenge"].as_str()?.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    /// Its challenge vector carries the expected answer.
    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/twitch.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
