//! Slack: `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`, timestamp in
//! `X-Slack-Request-Timestamp`. The signing secret looks like hex but is used as plain text.

use super::hmac::{HmacParams, Template, TimestampRule};
use super::mac::{Algorithm, Encoding};
use std::time::Duration;

pub fn params(tolerance: Duration) -> HmacParams {
    HmacParams {
        algorithm: Algorithm::Sha256,
        signature_header: "X-Slack-Signature".into(),
        encoding: Encoding::Hex,
        prefix: "v0=".into(),
        template: Template::parse("v0:{timestamp}:{body}").expect("valid template"),
        timestamp: Some(TimestampRule {
            header: "x-slack-request-timestamp".into(),
            tolerance,
        }),
        id_header: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::{Verifier, VerifyError, fixtures, hmac::HmacScheme};
    use std::time::Duration;

    fn build(secrets: &[String]) -> Verifier {
        Verifier::Hmac(HmacScheme::new(
            super::params(Duration::from_secs(300)),
            secrets,
        ))
    }

    #[test]
    fn published_vectors_verify() {
        fixtures::assert_vectors(include_str!("../../fixtures/slack.json"), "wrong", build);
    }

    #[test]
    fn a_replayed_request_is_refused_after_five_minutes() {
        let v = &fixtures::load(include_str!("../../fixtures/slack.json"))[0];
        let verifier = build(std::slice::from_ref(&v.secret));
        let late = verifier.verify(&v.header_map(), v.body.as_bytes(), v.now + 301);
        assert!(matches!(
            late,
            Err(VerifyError::TimestampOutsideTolerance { .. })
        ));
    }
}
