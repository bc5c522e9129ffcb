//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; no timestamp.

use super::hmac::{HmacParams, Template};
use super::mac::{Algorithm, Encoding};

pub fn params() -> HmacParams {
    HmacParams {
        algorithm: Algorithm::Sha256,
        signature_header: "X-Hub-Signature-256".into(),
        encoding: Encoding::Hex,
        prefix: "sha256=".into(),
        template: Template::parse("{body}").expect("valid template"),
        timestamp: None,
        id_header: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::verify::{Verifier, fixtures, hmac::HmacScheme};

    #[test]
    fn published_vectors_verify() {
        fixtures::assert_vectors(include_str!("../../fixtures/github.json"), "wrong", |s| {
            Verifier::Hmac(HmacScheme::new(super::params(), s))
        });
    }
}
