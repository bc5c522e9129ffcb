//! Twilio: `X-Twilio-Signature: <base64>`, HMAC-SHA1 under the account's auth token of the full
//! URL Twilio posts to (`public_url`, exactly as configured there) followed by every form
//! parameter, sorted by name, as name then value. No timestamp. Twilio's JSON bodies (signed
//! through a `bodySHA256` query parameter) are not supported.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use super::{Message, Scheme, SignError, Signed, VerifyError, required};
use crate::event_id::{EventIdRule, IdSource};
use axum::http::HeaderMap;
use std::collections::{BTreeMap, BTreeSet};

const HEADER: &str = "x-twilio-signature";

pub const PRESET: Preset = Preset {
    name: "twilio",
    keys: KeyKind::Secrets,
    extra_keys: &["public_url"],
    build: |keys| {
        scheme(Twilio {
            url: keys.public_url("twilio")?,
            keys: (keys.secrets.iter())
                .map(|s| KeyedMac::new(Algorithm::Sha1, s.as_bytes()))
                .collect(),
        })
    },
    tolerance: None,
    event_id: || EventIdRule {
        from: Some(IdSource::Header("i-twilio-idempotency-token".into())),
        fallback_body_sha256: true,
    },
    event_type: || None,
    max_body: DEFAULT_MAX_BODY,
    sample: Some(|id, status| {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("AccountSid", "AC00000000000000000000000000000000")
            .append_pair("MessageSid", id)
            .append_pair("MessageStatus", status);
        form.finish().into_bytes()
    }),
};

struct Twilio {
    url: String,
    keys: Vec<KeyedMac>,
}

impl Twilio {
    /// The URL, then each parameter name with each of its values, names and values sorted
    /// (as Twilio's own validators build it).
    fn signed_content(&self, body: &[u8]) -> Vec<u8> {
        let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            params
                .entry(name.into_owned())
                .or_default()
                .insert(value.into_owned());
        }
        let mut content = self.url.clone().into_bytes();
        for (name, values) in &params {
            for value in values {
                content.extend_from_slice(name.as_bytes());
                content.extend_from_slice(value.as_bytes());
            }
        }
        content
    }
}

impl Scheme for Twilio {
    fn verify(&self, headers: &HeaderMap, body: &[u8], _: i64) -> Result<(), VerifyError> {
        let signature = Encoding::Base64
            .decode(required(headers, HEADER)?.trim())
            .ok_or_else(|| VerifyError::malformed(HEADER, "signature is not base64"))?;
        let content = self.signed_content(body);
        match any_matches(&self.keys, &[&content], &[signature]) {
            true => Ok(()),
            false => Err(VerifyError::NoMatchingSignature),
        }
    }

    fn sign(&self, message: Message, _: Option<&str>) -> Result<Signed, SignError> {
        let tag = self.keys[0].tag(&[&self.signed_content(&message.body)]);
        Ok(Signed {
            headers: vec![
                (HEADER.to_string(), Encoding::Base64.encode(tag.as_bytes())),
                ("I-Twilio-Idempotency-Token".into(), message.id.to_string()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
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
        let fixtures = include_str!("../../fixtures/twilio.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
