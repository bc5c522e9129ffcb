//! Linear: `Linear-Signature: <hex>`, HMAC-SHA256 of the body under the webhook's signing secret.
//! The time is inside the signed body (`webhookTimestamp`, milliseconds), else in the
//! `Linear-Timestamp` header; Linear's SDK refuses it beyond 60 seconds.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{
    Message, Scheme, SignError, Signed, VerifyError, check_tolerance, parse_timestamp, required,
};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde_json::Value;
use std::time::Duration;

const TIMESTAMP_FIELD: &str = "webhookTimestamp";
const TIMESTAMP_HEADER: &str = "linear-timestamp";

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
        // Read into a one-field struct: serde skips the rest of the body without building it.
        #[derive(serde::Deserialize)]
        struct Stamped {
            #[serde(rename = "webhookTimestamp")]
            millis: Option<i64>,
        }
        let stamped: Option<Stamped> = serde_json::from_slice(body).ok();
        let in_body = stamped.and_then(|s| s.millis);
        let millis = match in_body {
            Some(millis) => millis,
            None => parse_timestamp(TIMESTAMP_HEADER, required(headers, TIMESTAMP_HEADER)?)?,
        };
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
    use super::*;
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/linear.json");

    #[test]
    fn fixture_passes() {
        fixtures::assert_preset(&PRESET, FIXTURES, "wrong");
    }

    #[test]
    fn without_webhook_timestamp_the_header_is_checked() {
        let v = &fixtures::load(FIXTURES)[0];
        let linear = fixtures::build(&PRESET, v, std::slice::from_ref(&v.secret));
        let body = br#"{"action":"create","type":"Issue"}"#;
        // Signed by hand: the signer would stamp the body.
        let key =
            crate::verify::mac::KeyedMac::new(crate::verify::mac::Algorithm::Sha256, b"SECRET");
        let signature = hex::encode(key.tag(&[body]).as_bytes());
        let mut map = HeaderMap::new();
        map.insert("linear-signature", signature.parse().unwrap());
        assert!(matches!(
            linear.verify(&map, body, 1_700_000_000),
            Err(VerifyError::MissingHeader(h)) if h == TIMESTAMP_HEADER
        ));
        map.insert(TIMESTAMP_HEADER, "1700000000000".parse().unwrap());
        assert!(linear.verify(&map, body, 1_700_000_030).is_ok());
        assert!(linear.verify(&map, body, 1_700_000_061).is_err());
    }
}
