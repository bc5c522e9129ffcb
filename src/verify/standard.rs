//! Standard Webhooks (and Svix, which sends the same under `svix-*` names):
//! `webhook-signature: v1,<base64>[ v1a,<base64>..]` over `{id}.{timestamp}.{body}`. `v1` is
//! HMAC-SHA256 keyed with the base64-decoded part of a `whsec_<base64>` secret; `v1a` is
//! Ed25519 under a `whpk_<base64>` public key. Any entry may match any key of its kind.

use super::ed25519;
use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::preset::{KeyKind, KeyProblem, Keys, Preset, scheme};
use super::{
    Message, Scheme, SignError, Signed, VerifyError, check_tolerance, parse_timestamp, required,
};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "standard",
    keys: KeyKind::Either,
    extra_keys: &[],
    build: |keys| scheme(Standard::from_keys(keys)?),
    tolerance: Some(Duration::from_secs(300)),
    // The verifier takes Svix's `svix-*` names as well: so must the id.
    event_id: || EventIdRule::first_header(&["webhook-id", "svix-id"]),
    event_type: || Some(EventTypeRule::json_pointer("/type")),
    max_body: super::preset::DEFAULT_MAX_BODY,
    sample: None,
};

pub struct Standard {
    keys: Vec<KeyedMac>,
    public_keys: Vec<ed25519::PublicKey>,
    tolerance: Duration,
}

/// The three headers, under either naming.
struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK: Names = Names {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};
const SVIX: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

impl Standard {
    /// Fails when a secret is not `whsec_` followed by base64, so a bad secret stops the
    /// configuration instead of refusing every webhook.
    pub fn new(secrets: &[String], tolerance: Duration) -> Result<Self, String> {
        let keys = secrets
            .iter()
            .map(|s| decode_secret(s).map(|key| KeyedMac::new(Algorithm::Sha256, &key)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            public_keys: Vec::new(),
            tolerance,
        })
    }

    fn from_keys(keys: &Keys) -> Result<Self, KeyProblem> {
        let mut standard =
            Self::new(keys.secrets, keys.tolerance).map_err(|e| KeyProblem::new("secrets", e))?;
        for key in keys.public_keys {
            let public = (key.strip_prefix("whpk_"))
                .and_then(|b64| BASE64.decode(b64).ok())
                .and_then(|bytes| ed25519::PublicKey::from_bytes(&bytes))
                .ok_or_else(|| {
                    KeyProblem::new(
                        "public_keys",
                        "a Standard Webhooks public key must be whpk_ followed by the base64 of 32 bytes",
                    )
                })?;
            standard.public_keys.push(public);
        }
        Ok(standard)
    }
}

impl Scheme for Standard {
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let names = match headers.contains_key(WEBHOOK.signature) {
            false if headers.contains_key(SVIX.signature) => &SVIX,
            _ => &WEBHOOK,
        };
        let signature_header = required(headers, names.signature)?;
        let id = required(headers, names.id)?;
        let ts_text = required(headers, names.timestamp)?;
        let ts = parse_timestamp(names.timestamp, ts_text)?;
        let entries = |version: &str| -> Vec<Vec<u8>> {
            (signature_header.split_ascii_whitespace())
                .filter_map(|entry| entry.strip_prefix(version))
                .filter_map(|b64| Encoding::Base64.decode(b64))
                .collect()
        };
        let (symmetric, asymmetric) = (entries("v1,"), entries("v1a,"));
        if symmetric.is_empty() && asymmetric.is_empty() {
            return Err(VerifyError::malformed(
                names.signature,
                "no v1,<base64> or v1a,<base64> signature",
            ));
        }
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
        let matches = any_matches(&self.keys, &parts, &symmetric)
            || ed25519::any_verifies(&self.public_keys, &parts.concat(), &asymmetric);
        if !matches {
            return Err(VerifyError::NoMatchingSignature);
        }
        check_tolerance(ts, now, self.tolerance)
    }

    /// Signs `v1` with the first secret, or `v1a` with a `whsk_` signing key when the source
    /// has only public keys.
    fn sign(&self, message: Message, signing_key: Option<&str>) -> Result<Signed, SignError> {
        let signature = match (self.keys.first(), signing_key) {
            (Some(key), None) => {
                SigningKey(key.clone()).sign(message.id, message.timestamp, &message.body)
            }
            (_, Some(text)) => {
                let seed = (text.trim().strip_prefix("whsk_"))
                    .and_then(|b64| BASE64.decode(b64).ok())
                    .ok_or(SignError::BadSigningKey("whsk_ followed by base64"))?;
                let key = ed25519::PrivateKey::from_seed(&seed)
                    .ok_or(SignError::BadSigningKey("an Ed25519 key (32 or 64 bytes)"))?;
                let ts = message.timestamp.to_string();
                let signed = [
                    message.id.as_bytes(),
                    b".",
                    ts.as_bytes(),
                    b".",
                    &message.body,
                ];
                format!("v1a,{}", BASE64.encode(key.sign(&signed.concat())))
            }
            (None, None) => return Err(SignError::NeedsSigningKey("whpk_ public keys")),
        };
        Ok(Signed {
            headers: vec![
                (WEBHOOK.id.to_string(), message.id.to_string()),
                (WEBHOOK.timestamp.to_string(), message.timestamp.to_string()),
                (WEBHOOK.signature.to_string(), signature),
            ],
            body: message.body,
        })
    }
}

/// A Standard Webhooks secret used to sign what hookgate sends to its destinations.
#[derive(Clone)]
pub struct SigningKey(KeyedMac);

impl SigningKey {
    pub fn parse(secret: &str) -> Result<Self, String> {
        decode_secret(secret).map(|key| Self(KeyedMac::new(Algorithm::Sha256, &key)))
    }

    /// The `webhook-signature` value for this message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let tag = self
            .0
            .tag(&[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", BASE64.encode(tag.as_bytes()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    match BASE64.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err("a Standard Webhooks secret must be whsec_ followed by base64".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Verifier, fixtures};

    const FIXTURES: &str = include_str!("../../fixtures/standard.json");
    const V1A: &str = include_str!("../../fixtures/standard-v1a.json");

    fn build(secrets: &[String]) -> Verifier {
        Verifier::new(Standard::new(secrets, Duration::from_secs(300)).unwrap())
    }

    #[test]
    fn published_vectors_verify() {
        // base64("wrong secret bytes")
        fixtures::assert_vectors(&PRESET, FIXTURES, "whsec_d3Jvbmcgc2VjcmV0IGJ5dGVz");
    }

    #[test]
    fn v1a_vectors_verify() {
        // RFC 8032 test 2's public key: a valid key that signed none of them.
        let wrong = "whpk_PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=";
        fixtures::assert_vectors(&PRESET, V1A, wrong);
        fixtures::assert_stale_refused(&PRESET, V1A);
    }

    #[test]
    fn v1a_signing_reproduces_the_vectors() {
        let signing_key = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
        for v in fixtures::load(V1A) {
            let verifier = fixtures::build(&PRESET, &v, std::slice::from_ref(&v.secret));
            let message = Message {
                id: &v.headers["webhook-id"],
                timestamp: v.headers["webhook-timestamp"].parse().unwrap(),
                body: v.body.clone().into_bytes(),
            };
            let signed = verifier.sign(message, Some(signing_key)).unwrap();
            assert_eq!(
                signed.headers[2].1, v.headers["webhook-signature"],
                "{}",
                v.name
            );
            let unsigned = Message {
                id: "x",
                timestamp: 0,
                body: Vec::new(),
            };
            let refused = verifier.sign(unsigned, None).map(|_| ());
            assert_eq!(
                refused,
                Err(SignError::NeedsSigningKey("whpk_ public keys"))
            );
        }
    }

    #[test]
    fn public_keys_must_be_whpk_and_32_bytes() {
        for bad in ["d2hwaw==", "whpk_AAAA", "whpk_!!"] {
            let keys = Keys {
                secrets: &[],
                public_keys: &[bad.to_string()],
                public_url: None,
                verify_token: None,
                tolerance: Duration::ZERO,
            };
            let problem = Standard::from_keys(&keys).err().unwrap();
            assert_eq!(problem.key, "public_keys", "{bad}");
        }
    }

    #[test]
    fn svix_header_names_are_accepted() {
        for v in fixtures::load(FIXTURES) {
            let mut headers = HeaderMap::new();
            for (name, value) in v.header_map() {
                let renamed = name.unwrap().as_str().replace("webhook-", "svix-");
                headers.insert(axum::http::HeaderName::try_from(renamed).unwrap(), value);
            }
            let verifier = build(std::slice::from_ref(&v.secret));
            assert!(verifier.verify(&headers, v.body.as_bytes(), v.now).is_ok());
        }
    }

    #[test]
    fn a_later_signature_in_the_list_may_match() {
        let v = &fixtures::load(FIXTURES)[0];
        let mut headers = v.header_map();
        let real = headers["webhook-signature"].to_str().unwrap().to_string();
        let list = format!("v1a,ZWQyNTUxOQ== v2,AAAA v1,AAAA {real}");
        headers.insert("webhook-signature", list.parse().unwrap());
        let verifier = build(std::slice::from_ref(&v.secret));
        assert!(verifier.verify(&headers, v.body.as_bytes(), v.now).is_ok());
    }

    #[test]
    fn stale_timestamp_is_refused() {
        let v = &fixtures::load(FIXTURES)[0];
        let verifier = build(std::slice::from_ref(&v.secret));
        let result = verifier.verify(&v.header_map(), v.body.as_bytes(), v.now + 301);
        assert!(matches!(
            result,
            Err(VerifyError::TimestampOutsideTolerance { .. })
        ));
    }

    #[test]
    fn signing_reproduces_the_published_vectors() {
        for v in fixtures::load(FIXTURES) {
            let key = SigningKey::parse(&v.secret).unwrap();
            let id = &v.headers["webhook-id"];
            let ts: i64 = v.headers["webhook-timestamp"].parse().unwrap();
            let signature = key.sign(id, ts, v.body.as_bytes());
            assert_eq!(signature, v.headers["webhook-signature"], "{}", v.name);
        }
    }

    #[test]
    fn secrets_that_are_not_base64_are_refused_at_start() {
        assert!(Standard::new(&["whsec_!!!".into()], Duration::ZERO).is_err());
        assert!(Standard::new(&["whsec_".into()], Duration::ZERO).is_err());
        assert!(Standard::new(&["whsec_c2VjcmV0".into()], Duration::ZERO).is_ok());
    }
}
