//! Signature verification: pure functions over (headers, raw body, now).
//!
//! Every scheme checks the raw bytes as received, before anything parses them, compares in
//! constant time and tries every configured key. A scheme also signs (for `hookgate send`) and
//! answers the handshakes its provider requires; [`preset`] lists the providers, one file each.

pub mod bitbucket;
pub mod calendly;
pub mod discord;
pub mod ed25519;
pub mod github;
pub mod gitlab;
pub mod hmac;
pub mod hubspot;
pub mod intercom;
pub mod lemonsqueezy;
pub mod linear;
pub mod listed;
pub mod mac;
pub mod mailgun;
pub mod meta;
pub mod paddle;
pub mod pagerduty;
pub mod preset;
pub mod sendgrid;
pub mod sentry;
pub mod shopify;
pub mod slack;
pub mod square;
pub mod standard;
pub mod stripe;
pub mod twilio;
pub mod twitch;
pub mod typeform;
pub mod vercel;
pub mod zoom;

use axum::http::HeaderMap;
use std::time::Duration;

/// Proof that a request passed its source's signature check; only this module makes one.
#[derive(Debug)]
pub struct Verified(());

/// Why a request's signature was refused. Messages name headers, never secrets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(String),
    #[error("malformed header {header}: {reason}")]
    MalformedHeader { header: String, reason: String },
    #[error("no signature matches any configured secret")]
    NoMatchingSignature,
    #[error(
        "timestamp {timestamp} is {skew} s away from the server's clock (tolerance {tolerance} s)"
    )]
    TimestampOutsideTolerance {
        timestamp: i64,
        skew: u64,
        tolerance: u64,
    },
}

impl VerifyError {
    fn malformed(header: &str, reason: impl Into<String>) -> Self {
        Self::MalformedHeader {
            header: header.to_string(),
            reason: reason.into(),
        }
    }
}

/// Why `hookgate send` could not sign.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the configuration holds only {0}: pass the private key with --signing-key to sign")]
    NeedsSigningKey(&'static str),
    #[error("the signing key is not {0}")]
    BadSigningKey(&'static str),
    #[error("the body is not {0}")]
    BadBody(&'static str),
}

/// What `hookgate send` asks a scheme to sign.
pub struct Message<'a> {
    /// The provider's delivery id, where the scheme signs or sends one.
    pub id: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    pub body: Vec<u8>,
}

/// A request as the provider would send it.
pub struct Signed {
    pub headers: Vec<(String, String)>,
    /// The body as sent: the same bytes, except where the signature travels inside it.
    pub body: Vec<u8>,
}

impl Signed {
    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A handshake's answer: the provider checks it before it sends real events.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Json(serde_json::Value),
    Text(String),
}

/// What a `GET` on a source's webhook path gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    /// The provider sends no such request.
    Unsupported,
    /// The request does not prove it comes from the provider.
    Refused,
    Answer(Answer),
}

/// One provider's scheme, keyed with a source's secrets or public keys.
pub trait Scheme: Send + Sync {
    /// `now` is seconds since the Unix epoch, passed in so tolerance tests need no clock.
    fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError>;

    /// Signs as the provider does, with the first configured secret, or with `signing_key`
    /// (the text of a private key) where the configuration holds only public keys.
    fn sign(&self, message: Message, signing_key: Option<&str>) -> Result<Signed, SignError>;

    /// The answer to a verified request that is a handshake, not an event.
    fn handshake(&self, _headers: &HeaderMap, _body: &[u8]) -> Option<Answer> {
        None
    }

    /// The answer to a `GET` with `query` (the raw query string).
    fn challenge(&self, _query: &str) -> Challenge {
        Challenge::Unsupported
    }
}

/// A source's verifier, built once from its configuration.
pub struct Verifier(Box<dyn Scheme>);

impl Verifier {
    pub fn new(scheme: impl Scheme + 'static) -> Self {
        Self(Box::new(scheme))
    }

    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        self.0.verify(headers, body, now)?;
        Ok(Verified(()))
    }

    pub fn sign(&self, message: Message, signing_key: Option<&str>) -> Result<Signed, SignError> {
        self.0.sign(message, signing_key)
    }

    /// Only a [`Verified`] request may be answered as a handshake.
    pub fn handshake(&self, _: &Verified, headers: &HeaderMap, body: &[u8]) -> Option<Answer> {
        self.0.handshake(headers, body)
    }

    pub fn challenge(&self, query: &str) -> Challenge {
        self.0.challenge(query)
    }
}

impl From<Box<dyn Scheme>> for Verifier {
    fn from(scheme: Box<dyn Scheme>) -> Self {
        Self(scheme)
    }
}

/// The value of a required header as text.
fn required<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    let value = headers
        .get(name)
        .ok_or_else(|| VerifyError::MissingHeader(name.to_string()))?;
    value
        .to_str()
        .map_err(|_| VerifyError::malformed(name, "not visible ASCII"))
}

/// Parses a Unix timestamp in seconds taken from `header`.
fn parse_timestamp(header: &str, text: &str) -> Result<i64, VerifyError> {
    text.trim()
        .parse()
        .map_err(|_| VerifyError::malformed(header, "timestamp is not an integer"))
}

/// Refuses timestamps too old (replays) and too far in the future (a clock that cannot be trusted).
fn check_tolerance(timestamp: i64, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let skew = now.abs_diff(timestamp);
    let tolerance = tolerance.as_secs();
    if skew > tolerance {
        return Err(VerifyError::TimestampOutsideTolerance {
            timestamp,
            skew,
            tolerance,
        });
    }
    Ok(())
}

/// Test vectors shipped in `fixtures/<provider>.json`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::preset::{KeyKind, Keys, Preset};
    use super::{Verifier, VerifyError};
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    pub struct File {
        pub vectors: Vec<Vector>,
        /// False for a token scheme, which proves the sender but not the body.
        #[serde(default = "signed")]
        pub body_signed: bool,
    }

    fn signed() -> bool {
        true
    }

    #[derive(Deserialize)]
    pub struct Vector {
        pub name: String,
        /// The configured key: a secret, or a public key for asymmetric schemes.
        pub secret: String,
        pub now: i64,
        pub body: String,
        pub headers: BTreeMap<String, String>,
        #[serde(default)]
        pub public_url: Option<String>,
        /// The handshake's answer, for a request that is one: a JSON string stands for a
        /// text answer.
        #[serde(default)]
        pub answer: Option<serde_json::Value>,
    }

    impl Vector {
        pub fn header_map(&self) -> HeaderMap {
            self.headers
                .iter()
                .map(|(k, v)| {
                    (
                        HeaderName::try_from(k.as_str()).unwrap(),
                        HeaderValue::try_from(v.as_str()).unwrap(),
                    )
                })
                .collect()
        }
    }

    pub fn load(json: &str) -> Vec<Vector> {
        serde_json::from_str::<File>(json).unwrap().vectors
    }

    /// What every preset's fixture must pass: its vectors (valid, rotated, wrong key,
    /// tampered), a stale timestamp where the scheme has one, and signing what it verifies.
    pub fn assert_preset(preset: &Preset, json: &str, wrong_key: &str) {
        assert_vectors(preset, json, wrong_key);
        if preset.tolerance.is_some() {
            assert_stale_refused(preset, json);
        }
        if preset.keys != KeyKind::PublicKeys {
            assert_signed_verifies(preset, json, None);
        }
    }

    /// `preset`'s verifier for this vector, with `keys` as its configured keys.
    pub fn build(preset: &Preset, v: &Vector, keys: &[String]) -> Verifier {
        let public = match preset.keys {
            KeyKind::Secrets => false,
            KeyKind::PublicKeys => true,
            KeyKind::Either => keys.iter().any(|k| k.starts_with("whpk_")),
        };
        let (secrets, public_keys) = match public {
            true => (&[][..], keys),
            false => (keys, &[][..]),
        };
        let keys = Keys {
            secrets,
            public_keys,
            public_url: v.public_url.as_deref(),
            verify_token: Some("fixture-verify-token"),
            tolerance: preset.tolerance.unwrap_or_default(),
        };
        match (preset.build)(&keys) {
            Ok(scheme) => scheme.into(),
            Err(problem) => panic!("{}: {problem:?}", v.name),
        }
    }

    /// Each published vector verifies; a tampered body or a wrong key does not; the right key
    /// still verifies when it is second in the list (rotation).
    pub fn assert_vectors(preset: &Preset, json: &str, wrong_key: &str) {
        use VerifyError::NoMatchingSignature;
        let file: File = serde_json::from_str(json).unwrap();
        assert!(!file.vectors.is_empty());
        for v in file.vectors {
            let headers = v.header_map();
            let body = v.body.as_bytes();
            let right = build(preset, &v, std::slice::from_ref(&v.secret));
            let wrong = build(preset, &v, &[wrong_key.to_string()]);
            let rotated = build(preset, &v, &[wrong_key.to_string(), v.secret.clone()]);
            let verified = right.verify(&headers, body, v.now);
            let verified = verified.unwrap_or_else(|e| panic!("{}: {e}", v.name));
            let expected = v.answer.clone().map(|answer| match answer {
                serde_json::Value::String(text) => super::Answer::Text(text),
                json => super::Answer::Json(json),
            });
            let answer = right.handshake(&verified, &headers, body);
            assert_eq!(answer, expected, "{}: the handshake's answer", v.name);
            assert!(rotated.verify(&headers, body, v.now).is_ok(), "{}", v.name);
            let wrong_result = wrong.verify(&headers, body, v.now).map(|_| ());
            assert_eq!(wrong_result, Err(NoMatchingSignature), "{}", v.name);
            if !file.body_signed {
                continue;
            }
            let tampered = tamper(body);
            let tampered_result = right.verify(&headers, &tampered, v.now).map(|_| ());
            assert_eq!(tampered_result, Err(NoMatchingSignature), "{}", v.name);
        }
    }

    /// The body with one signed byte changed: a space where the signature travels inside the
    /// body would change nothing that is signed.
    fn tamper(body: &[u8]) -> Vec<u8> {
        let mut tampered = body.to_vec();
        let at = tampered
            .iter()
            .position(u8::is_ascii_digit)
            .unwrap_or(tampered.len() / 2);
        tampered[at] = if tampered[at] == b'1' { b'2' } else { b'1' };
        tampered
    }

    /// The first vector, checked `tolerance + 1` seconds late and early, is refused.
    pub fn assert_stale_refused(preset: &Preset, json: &str) {
        let tolerance = preset
            .tolerance
            .expect("the scheme has a timestamp")
            .as_secs() as i64;
        let v = &load(json)[0];
        let verifier = build(preset, v, std::slice::from_ref(&v.secret));
        for now in [v.now + tolerance + 1, v.now - tolerance - 1] {
            let result = verifier.verify(&v.header_map(), v.body.as_bytes(), now);
            assert!(
                matches!(result, Err(VerifyError::TimestampOutsideTolerance { .. })),
                "{}: {result:?}",
                v.name
            );
        }
    }

    /// Signing each vector's body again with its key verifies.
    pub fn assert_signed_verifies(preset: &Preset, json: &str, signing_key: Option<&str>) {
        for v in load(json) {
            let verifier = build(preset, &v, std::slice::from_ref(&v.secret));
            let message = super::Message {
                id: "msg_sign_test",
                timestamp: v.now,
                body: v.body.clone().into_bytes(),
            };
            let signed = verifier.sign(message, signing_key).unwrap();
            let headers: HeaderMap = signed
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        HeaderName::try_from(k.as_str()).unwrap(),
                        HeaderValue::try_from(v.as_str()).unwrap(),
                    )
                })
                .collect();
            let result = verifier.verify(&headers, &signed.body, v.now).map(|_| ());
            assert_eq!(result, Ok(()), "{}", v.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_refuses_both_stale_and_future_timestamps() {
        let five_minutes = Duration::from_secs(300);
        assert!(check_tolerance(1000, 1300, five_minutes).is_ok());
        assert!(check_tolerance(1300, 1000, five_minutes).is_ok());
        assert_eq!(
            check_tolerance(1000, 1301, five_minutes),
            Err(VerifyError::TimestampOutsideTolerance {
                timestamp: 1000,
                skew: 301,
                tolerance: 300
            })
        );
        assert!(check_tolerance(1301, 1000, five_minutes).is_err());
        assert!(check_tolerance(i64::MIN, i64::MAX, five_minutes).is_err());
    }
}
