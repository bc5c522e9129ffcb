//! Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>..]` over `{t}.{body}`. The key is the
//! whole `whsec_..` string; during a secret roll Stripe sends one `v1` per live secret and any
//! one may match. `v0` entries are test-mode leftovers and are ignored.

use super::listed::{Layout, Listed};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "stripe",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(new(keys.secrets, keys.tolerance)),
    tolerance: Some(Duration::from_secs(300)),
    event_id: || EventIdRule::json_pointer("/id"),
    event_type: || Some(EventTypeRule::json_pointer("/type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

pub fn new(secrets: &[String], tolerance: Duration) -> Listed {
    let layout = Layout {
        header: "stripe-signature",
        separator: ',',
        timestamp: Some(("t", ".")),
        signature_key: "v1",
    };
    Listed::new(layout, secrets, tolerance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{Scheme, VerifyError, fixtures};
    use axum::http::HeaderMap;

    const FIXTURES: &str = include_str!("../../fixtures/stripe.json");

    #[test]
    fn sdk_generated_vectors_verify() {
        fixtures::assert_vectors(&PRESET, FIXTURES, "whsec_wrong");
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        fixtures::assert_stale_refused(&PRESET, FIXTURES);
    }

    #[test]
    fn signing_verifies() {
        fixtures::assert_signed_verifies(&PRESET, FIXTURES, None);
    }

    #[test]
    fn headers_without_t_or_v1_are_malformed() {
        let verifier = new(&["whsec_x".to_string()], Duration::from_secs(300));
        for header in ["v1=00", "t=1700000000", "t=1700000000,v0=abcd", "t=x,v1=00"] {
            let mut headers = HeaderMap::new();
            headers.insert("stripe-signature", header.parse().unwrap());
            let result = verifier.verify(&headers, b"{}", 1_700_000_000);
            assert!(
                matches!(result, Err(VerifyError::MalformedHeader { .. })),
                "{header}: {result:?}"
            );
        }
    }
}
