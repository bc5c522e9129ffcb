//! Mailgun: the signature travels inside the JSON body, `signature.{timestamp,token,signature}`,
//! the hex HMAC-SHA256 of timestamp followed by token under the webhook signing key. The token
//! is unique per webhook, so it is the event id: a replayed body is a duplicate.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Message, Scheme, SignError, Signed, VerifyError};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde_json::{Value, json};

/// Named in errors, as a header would be: where the signature was looked for.
const FIELD: &str = "body signature";

pub const PRESET: Preset = Preset {
    name: "mailgun",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| {
        scheme(Mailgun(
            (keys.secrets.iter())
                .map(|s| KeyedMac::new(Algorithm::Sha256, s.as_bytes()))
                .collect(),
        ))
    },
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/signature/token"),
    event_type: || Some(EventTypeRule::json_pointer("/event-data/event")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

struct Mailgun(Vec<KeyedMac>);

impl Scheme for Mailgun {
    fn verify(&self, _: &HeaderMap, body: &[u8], _: i64) -> Result<(), VerifyError> {
        let malformed = |reason| VerifyError::malformed(FIELD, reason);
        let body: Value =
            serde_json::from_slice(body).map_err(|_| malformed("the body is not JSON"))?;
        let field = |name: &str| {
            let value = &body["signature"][name];
            // Mailgun's docs show the timestamp as a string; accept a number too.
            value
                .as_str()
                .map(str::to_string)
                .or_else(|| value.as_i64().map(|n| n.to_string()))
                .ok_or_else(|| malformed("signature.timestamp, .token and .signature are required"))
        };
        let (timestamp, token) = (field("timestamp")?, field("token")?);
        let signature = Encoding::Hex
            .decode(&field("signature")?)
            .ok_or_else(|| malformed("signature.signature is not hex"))?;
        let parts = [timestamp.as_bytes(), token.as_bytes()];
        match any_matches(&self.0, &parts, &[signature]) {
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
        let tag = self.0[0].tag(&[timestamp.as_bytes(), message.id.as_bytes()]);
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
