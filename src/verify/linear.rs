//! Linear: `Linear-Signature: <hex>`, HMAC-SHA256 of the body under the webhook's signing secret.
//! The time is inside the signed body (`webhookTimestamp`, milliseconds); Linear's SDK refuses
//! it beyond 60 seconds.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Message, Scheme, SignError, Signed, VerifyError, check_tolerance};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde_json::Value;
use std::time::Duration;

const TIMESTAMP_FIELD: &str = "webhookTimestamp";

pub const PRESET: Preset = Preset {
    name: "linear",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| {
        let params = HmacParams::body(Algorithm::Sha256, "Linear-Signature", Encoding::Hex, "");
        scheme(Linear {
            hmac: HmacScheme::new(params, keys.secrets),
            tolerance: keys.tolerance,
        })
    },
    tolerance: Some(Duration::from_secs(60)),
    event_id: || EventIdRule::header("Linear-Delivery"),
    event_type: || Some(EventTypeRule::header("Linear-Event")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Linear {
    hmac: HmacScheme,
    tolerance: Duration,
}

impl Scheme for Linear {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        self.hmac.verify(headers, body, now)?;
        let value: Option<Value> = serde_json::from_slice(body).ok();
        let millis = (value.as_ref())
            .and_then(|v| v[TIMESTAMP_FIELD].as_i64())
            .ok_or_else(|| {
                VerifyError::malformed(TIMESTAMP_FIELD, "the body has no numeric webhookTimestamp")
            })?;
        check_tolerance(millis.div_euclid(1000), now, self.tolerance)
    }

    /// Stamps the body's `webhookTimestamp`, then signs it.
    fn sign(&self, mut message: Message, key: Option<&str>) -> Result<Signed, SignError> {
        let mut body: Value = serde_json::from_slice(&message.body)
            .ok()
            .filter(Value::is_object)
            .ok_or(SignError::BadBody("a JSON object"))?;
        body[TIMESTAMP_FIELD] = (message.timestamp * 1000).into();
        message.body = body.to_string().into_bytes();
        self.hmac.sign(message, key)
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/linear.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
