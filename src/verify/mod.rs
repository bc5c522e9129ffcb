//! Signature verification: pure functions over (headers, raw body, now).
//!
//! Every scheme checks the raw bytes as received, before anything parses them, compares in
//! constant time and tries every configured secret. GitHub, Shopify and Slack are presets of the
//! generic HMAC scheme; Stripe and Standard Webhooks carry several signatures in one header and
//! have schemes of their own.

pub mod github;
pub mod hmac;
pub mod mac;
pub mod shopify;
pub mod slack;
pub mod standard;
pub mod stripe;

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

/// A source's verifier, built once from its configuration.
pub enum Verifier {
    Stripe(stripe::Stripe),
    Standard(standard::Standard),
    Hmac(hmac::HmacScheme),
}

impl Verifier {
    /// `now` is seconds since the Unix epoch, passed in so tolerance tests need no clock.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        match self {
            Self::Stripe(s) => s.verify(headers, body, now),
            Self::Standard(s) => s.verify(headers, body, now),
            Self::Hmac(s) => s.verify(headers, body, now),
        }?;
        Ok(Verified(()))
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
    use axum::http::{HeaderMap, HeaderName, HeaderValue};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    pub struct File {
        pub vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    pub struct Vector {
        pub name: String,
        pub secret: String,
        pub now: i64,
        pub body: String,
        pub headers: BTreeMap<String, String>,
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

    /// Each published vector verifies; a tampered body or a wrong secret does not; the right
    /// secret still verifies when it is second in the list (rotation).
    pub fn assert_vectors(
        json: &str,
        wrong_secret: &str,
        build: impl Fn(&[String]) -> super::Verifier,
    ) {
        use super::VerifyError::NoMatchingSignature;
        let vectors = load(json);
        assert!(!vectors.is_empty());
        for v in vectors {
            let headers = v.header_map();
            let body = v.body.as_bytes();
            let right = build(std::slice::from_ref(&v.secret));
            let wrong = build(&[wrong_secret.to_string()]);
            let rotated = build(&[wrong_secret.to_string(), v.secret.clone()]);
            assert!(right.verify(&headers, body, v.now).is_ok(), "{}", v.name);
            assert!(rotated.verify(&headers, body, v.now).is_ok(), "{}", v.name);
            let wrong_result = wrong.verify(&headers, body, v.now).map(|_| ());
            assert_eq!(wrong_result, Err(NoMatchingSignature), "{}", v.name);
            let mut tampered = body.to_vec();
            tampered.push(b' ');
            let tampered_result = right.verify(&headers, &tampered, v.now).map(|_| ());
            assert_eq!(tampered_result, Err(NoMatchingSignature), "{}", v.name);
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
