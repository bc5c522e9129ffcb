//! Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>..]` over `{t}.{body}`. The key is the
//! whole `whsec_..` string; during a secret roll Stripe sends one `v1` per live secret and any
//! one may match. `v0` entries are test-mode leftovers and are ignored.

use super::mac::{Algorithm, Encoding, KeyedMac, any_matches};
use super::{VerifyError, check_tolerance, parse_timestamp, required};
use axum::http::HeaderMap;
use std::time::Duration;

const HEADER: &str = "stripe-signature";

pub struct Stripe {
    keys: Vec<KeyedMac>,
    tolerance: Duration,
}

impl Stripe {
    pub fn new(secrets: &[String], tolerance: Duration) -> Self {
        let keys = secrets
            .iter()
            .map(|s| KeyedMac::new(Algorithm::Sha256, s.as_bytes()))
            .collect();
        Self { keys, tolerance }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let header = required(headers, HEADER)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            match item.trim().split_once('=') {
                Some(("t", value)) => timestamp = Some(value),
                Some(("v1", value)) => signatures.extend(Encoding::Hex.decode(value)),
                _ => {}
            }
        }
        let ts_text = timestamp.ok_or_else(|| VerifyError::malformed(HEADER, "no t= timestamp"))?;
        let ts = parse_timestamp(HEADER, ts_text)?;
        if signatures.is_empty() {
            return Err(VerifyError::malformed(HEADER, "no v1= hex signature"));
        }
        if !any_matches(&self.keys, &[ts_text.as_bytes(), b".", body], &signatures) {
            return Err(VerifyError::NoMatchingSignature);
        }
        check_tolerance(ts, now, self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Verifier, fixtures};

    const FIXTURES: &str = include_str!("../../fixtures/stripe.json");

    fn build(secrets: &[String]) -> Verifier {
        Verifier::Stripe(Stripe::new(secrets, Duration::from_secs(300)))
    }

    #[test]
    fn sdk_generated_vectors_verify() {
        fixtures::assert_vectors(FIXTURES, "whsec_wrong", build);
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let v = &fixtures::load(FIXTURES)[0];
        let verifier = build(std::slice::from_ref(&v.secret));
        let body = v.body.as_bytes();
        for now in [v.now + 301, v.now - 301] {
            let result = verifier.verify(&v.header_map(), body, now).map(|_| ());
            assert!(
                matches!(result, Err(VerifyError::TimestampOutsideTolerance { .. })),
                "{now}"
            );
        }
    }

    #[test]
    fn headers_without_t_or_v1_are_malformed() {
        let verifier = build(&["whsec_x".to_string()]);
        for header in ["v1=00", "t=1700000000", "t=1700000000,v0=abcd", "t=x,v1=00"] {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, header.parse().unwrap());
            let result = verifier.verify(&headers, b"{}", 1_700_000_000).map(|_| ());
            assert!(
                matches!(result, Err(VerifyError::MalformedHeader { .. })),
                "{header}: {result:?}"
            );
        }
    }
}
