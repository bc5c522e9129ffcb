//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the body; no timestamp.

use super::hmac::{HmacParams, Template};
use super::mac::{Algorithm, Encoding};

pub fn params() -> HmacParams {
    HmacParams {
        algorithm: Algorithm::Sha256,
        signature_header: "X-Shopify-Hmac-Sha256".into(),
        encoding: Encoding::Base64,
        prefix: String::new(),
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
        fixtures::assert_vectors(include_str!("../../fixtures/shopify.json"), "wrong", |s| {
            Verifier::Hmac(HmacScheme::new(super::params(), s))
        });
    }
}
