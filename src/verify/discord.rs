//! Discord interactions: `X-Signature-Ed25519: <hex>`, Ed25519 over `X-Signature-Timestamp`
//! followed by the body, under the application's public key (hex, from `public_keys`). Discord
//! states no tolerance and sends bad signatures on purpose to check they are refused. A PING
//! (`"type": 1`, itself signed) is answered with `{"type": 1}`.

use super::ed25519::{self, PrivateKey, PublicKey};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, KeyProblem, Preset, scheme};
use super::{Answer, Message, Scheme, SignError, Signed, VerifyError, required};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use serde_json::json;

const SIGNATURE: &str = "x-signature-ed25519";
const TIMESTAMP: &str = "x-signature-timestamp";

pub const PRESET: Preset = Preset {
    name: "discord",
    keys: KeyKind::PublicKeys,
    extra_keys: &[],
    build: |keys| {
        let keys = (keys.public_keys.iter())
            .map(|key| {
                hex::decode(key.trim())
                    .ok()
                    .and_then(|bytes| PublicKey::from_bytes(&bytes))
                    .ok_or_else(|| {
                        KeyProblem::new(
                            "public_keys",
                            "a Discord public key is 64 hex digits (the application's PUBLIC KEY)",
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        scheme(Discord(keys))
    },
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/id"),
    // The command's name; a PING has none.
    event_type: || Some(EventTypeRule::json_pointer("/data/name")),
    max_body: DEFAULT_MAX_BODY,
    sample: Some(|id, name| {
        json!({ "id": id, "type": 2, "data": { "name": name } })
            .to_string()
            .into_bytes()
    }),
};

struct Discord(Vec<PublicKey>);

impl Scheme for Discord {
    fn verify(&self, headers: &HeaderMap, body: &[u8], _: i64) -> Result<(), VerifyError> {
        let signature = hex::decode(required(headers, SIGNATURE)?.trim())
            .map_err(|_| VerifyError::malformed(SIGNATURE, "signature is not hex"))?;
        let timestamp = required(headers, TIMESTAMP)?;
        let message = [timestamp.as_bytes(), body].concat();
        match ed25519::any_verifies(&self.0, &message, &[signature]) {
            true => Ok(()),
            false => Err(VerifyError::NoMatchingSignature),
        }
    }

    /// `signing_key`: the private key's 32-byte seed in hex.
    fn sign(&self, message: Message, signing_key: Option<&str>) -> Result<Signed, SignError> {
        let text = signing_key.ok_or(SignError::NeedsSigningKey("Discord's public key"))?;
        let key = hex::decode(text.trim())
            .ok()
            .and_then(|seed| PrivateKey::from_seed(&seed))
            .ok_or(SignError::BadSigningKey(
                "an Ed25519 seed in hex (64 digits)",
            ))?;
        let timestamp = message.timestamp.to_string();
        let signature = key.sign(&[timestamp.as_bytes(), &message.body].concat());
        Ok(Signed {
            headers: vec![
                (SIGNATURE.to_string(), hex::encode(signature)),
                (TIMESTAMP.to_string(), timestamp),
            ],
            body: message.body,
        })
    }

    /// Read into a one-field struct: serde skips the rest of the body without building it.
    fn handshake(&self, _: &HeaderMap, body: &[u8]) -> Option<Answer> {
        #[derive(serde::Deserialize)]
        struct Interaction {
            #[serde(rename = "type")]
            kind: Option<u64>,
        }
        let request: Interaction = serde_json::from_slice(body).ok()?;
        (request.kind == Some(1)).then(|| Answer::Json(json!({ "type": 1 })))
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/discord.json");

    /// Its PING vector carries the expected answer.
    #[test]
    fn fixture_passes() {
        // RFC 8032 TEST 2's public key: valid, but it signed none of them.
        let wrong = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
        fixtures::assert_preset(&super::PRESET, FIXTURES, wrong);
    }

    #[test]
    fn signing_needs_the_private_key() {
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        fixtures::assert_signed_verifies(&super::PRESET, FIXTURES, Some(seed));
        let v = &fixtures::load(FIXTURES)[0];
        let discord = fixtures::build(&super::PRESET, v, std::slice::from_ref(&v.secret));
        let message = || crate::verify::Message {
            id: "x",
            timestamp: 0,
            body: Vec::new(),
        };
        let refused = discord.sign(message(), None).map(|_| ());
        let needs = crate::verify::SignError::NeedsSigningKey("Discord's public key");
        assert_eq!(refused, Err(needs));
        assert!(discord.sign(message(), Some("not hex")).is_err());
    }
}
