//! Zoom: `x-zm-signature: v0=<hex>` over `v0:{timestamp}:{body}` with the timestamp in
//! `x-zm-request-timestamp`, HMAC-SHA256 under the app's secret token. Zoom states no
//! tolerance; hookgate allows 5 minutes. `endpoint.url_validation` (itself signed) is answered
//! with the plain token and its hex HMAC-SHA256 under the same secret.

use super::hmac::{HmacParams, HmacScheme, Template, TimeFormat, TimestampRule};
use super::mac::{Algorithm, Encoding, KeyedMac};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Answer, Message, Scheme, SignError, Signed, VerifyError};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde_json::json;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "zoom",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| {
        let params = HmacParams {
            template: Template::parse("v0:{timestamp}:{body}").expect("a valid template"),
            timestamp: Some(TimestampRule {
                header: "x-zm-request-timestamp".into(),
                tolerance: keys.tolerance,
                format: TimeFormat::Seconds,
            }),
            ..HmacParams::body(Algorithm::Sha256, "x-zm-signature", Encoding::Hex, "v0=")
        };
        scheme(Zoom {
            hmac: HmacScheme::new(params, keys.secrets),
            // The first secret is the current one: Zoom checks the answer against it.
            answer_key: KeyedMac::new(Algorithm::Sha256, keys.secrets[0].as_bytes()),
        })
    },
    tolerance: Some(Duration::from_secs(300)),
    // Zoom sends no delivery id.
    event_id: EventIdRule::body_sha256,
    event_type: || Some(EventTypeRule::json_pointer("/event")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Zoom {
    hmac: HmacScheme,
    answer_key: KeyedMac,
}

impl Scheme for Zoom {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        self.hmac.verify(headers, body, now)
    }

    fn sign(&self, message: Message, key: Option<&str>) -> Result<Signed, SignError> {
        self.hmac.sign(message, key)
    }

    /// Read into small structs: serde skips the rest of the body without building it.
    fn handshake(&self, _: &HeaderMap, body: &[u8]) -> Option<Answer> {
        #[derive(serde::Deserialize)]
        struct Event {
            event: Option<String>,
            payload: Option<Payload>,
        }
        #[derive(serde::Deserialize)]
        struct Payload {
            #[serde(rename = "plainToken")]
            plain_token: Option<String>,
        }
        let request: Event = serde_json::from_slice(body).ok()?;
        if request.event.as_deref() != Some("endpoint.url_validation") {
            return None;
        }
        let plain = request.payload?.plain_token?;
        let plain = plain.as_str();
        let encrypted = hex::encode(self.answer_key.tag(&[plain.as_bytes()]).as_bytes());
        Some(Answer::Json(
            json!({ "plainToken": plain, "encryptedToken": encrypted }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    /// Its URL validation vector carries the expected answer.
    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/zoom.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
