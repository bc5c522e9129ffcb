//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the body; no timestamp.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "shopify",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    // Per delivery; X-Shopify-Event-Id repeats across subscriptions.
    event_id: || EventIdRule::header("X-Shopify-Webhook-Id"),
    event_type: || Some(EventTypeRule::header("X-Shopify-Topic")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

pub fn params() -> HmacParams {
    HmacParams::body(
        Algorithm::Sha256,
        "X-Shopify-Hmac-Sha256",
        Encoding::Base64,
        "",
    )
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/shopify.json");

    #[test]
    fn fixture_passes() {
        fixtures::assert_preset(&super::PRESET, FIXTURES, "wrong");
    }
}
