//! Standard Webhooks (and Svix, which sends the same under `svix-*` names):
//! `webhook-signature: v1,<base64>[ v1,<base64>..]` over `{id}.{timestamp}.{body}`, keyed with
//! the base64-decoded part of `whsec_<base64>`. `v1a` (Ed25519) entries are not HMAC and are
//! skipped.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::{VerifyError, check_tolerance, parse_timestamp, required};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::time::Duration;

pub struct Standard {
    keys: Vec<KeyedMac>,
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
        Ok(Self { keys, tolerance })
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let names = match headers.contains_key(WEBHOOK.signature) {
            false if headers.contains_key(SVIX.signature) => &SVIX,
            _ => &WEBHOOK,
        };
        let signature_header = required(headers, names.signature)?;
        let id = required(headers, names.id)?;
        let ts_text = required(headers, names.timestamp)?;
        let ts = parse_timestamp(names.timestamp, ts_text)?;
        let signatures: Vec<Vec<u8>> = signature_header
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| Encoding::Base64.decode(b64))
            .collect();
        if signatures.is_empty() {
            return Err(VerifyError::malformed(
                names.signature,
                "no v1,<base64> signature",
            ));
        }
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
        if !any_matches(&self.keys, &parts, &signatures) {
            return Err(VerifyError::NoMatchingSignature);
        }
        check_tolerance(ts, now, self.tolerance)
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

    fn build(secrets: &[String]) -> Verifier {
        Verifier::Standard(Standard::new(secrets, Duration::from_secs(300)).unwrap())
    }

    #[test]
    fn published_vectors_verify() {
        // base64("wrong secret bytes")
        fixtures::assert_vectors(FIXTURES, "whsec_d3Jvbmcgc2VjcmV0IGJ5dGVz", build);
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
        let list = format!("v1a,ZWQyNTUxOQ== v1,AAAA {real}");
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
