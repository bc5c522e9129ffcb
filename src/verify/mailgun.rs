//! Mailgun: the signature travels inside the JSON body, `signature.{timestamp,token,signature}`,
//! the hex HMAC-SHA256 of timestamp followed by token under the webhook signing key. The token
//! is unique per webhook, so it is the event id: a replayed body is a duplicate. `event-data`
//! itself is not signed, so a signature block could be moved onto other event data: the
//! timestamp must be recent (5 minutes, as Mailgun's docs advise checking it), so a captured
//! block is of no use once its event's row has gone with retention.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Message, Scheme, SignError, Signed, VerifyError, check_tolerance, parse_timestamp};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Named in errors, as a header would be: where the signature was looked for.
const FIELD: &str = "body signature";

pub const PRESET: Preset = Preset {
    name: "mailgun",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| {
        scheme(Mailgun {
            keys: (keys.secrets.iter())
                .map(|s| KeyedMac::new(Algorithm::Sha256, s.as_bytes()))
                .collect(),
            tolerance: keys.tolerance,
        })
    },
    tolerance: Some(Duration::from_secs(300)),
    event_id: || EventIdRule::json_pointer("/signature/token"),
    event_type: || Some(EventTypeRule::json_pointer("/event-data/event")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Mailgun {
    keys: Vec<KeyedMac>,
    tolerance: Duration,
}

/// The part of the body that is read: serde skips the rest without building it.
#[derive(Deserialize)]
struct Body {
    signature: Option<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    timestamp: Option<Text>,
    token: Option<String>,
    signature: Option<String>,
}

/// Mailgun's docs show the timestamp as a string; a number is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    String(String),
    Number(i64),
}

impl Scheme for Mailgun {
    fn verify(&self, _: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let malformed = |reason| VerifyError::malformed(FIELD, reason);
        let body: Body =
            serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
        let required = || malformed("signature.timestamp, .token and .signature are required");
        let signature = body.signature.ok_or_else(required)?;
        let (Some(timestamp), Some(token), Some(hex)) =
            (signature.timestamp, signature.token, signature.signature)
        else {
            return Err(required());
        };
        let timestamp = match timestamp {
            Text::String(text) => text,
            Text::Number(n) => n.to_string(),
        };
        check_tolerance(parse_timestamp(FIELD, &timestamp)?, now, self.tolerance)?;
        let signature = Encoding::Hex
            .decode(&hex)
            .ok_or_else(|| malformed("signature.signature is not hex"))?;
        let parts = [timestamp.as_bytes(), token.as_bytes()];
        match any_matches(&self.keys, &parts, &[signature]) {
            true => Ok(()),
            false => Err(VerifyError::NoMatchingSignature),
        }
    }

    /// Puts the signature into the body, with the message id as the token.
    fn sign(&self, message: Message, _: Option<&str>) -> Result<Signed, SignError> {
        let mut body: Value = serde_json::from_slice(&message.body)
            .ok()
            .filter(Value::is_object)
            .ok_or(SignError::BadBody("a JSON object"))?;
        let timestamp = message.timestamp.to_string();
        let tag = self.keys[0].tag(&[timestamp.as_bytes(), message.id.as_bytes()]);
        body["signature"] = json!({
            "timestamp": timestamp,
            "token": message.id,
            "signature": hex::encode(tag.as_bytes()),
        });
        Ok(Signed {
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/mailgun.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
