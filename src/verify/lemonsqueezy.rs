//! Lemon Squeezy: `X-Signature: <hex>`, HMAC-SHA256 of the body under the webhook's signing
//! secret; no timestamp and no event id, so identical bodies are one event.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "lemonsqueezy",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    event_id: || EventIdRule::body_sha256(),
    event_type: || Some(EventTypeRule::header("X-Event-Name")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

fn params() -> HmacParams {
    HmacParams::body(Algorithm::Sha256, "X-Signature", Encoding::Hex, "")
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/lemonsqueezy.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
