//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; no timestamp. Payloads are capped
//! at 25 MB.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "github",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    // The same on a redelivery.
    event_id: || EventIdRule::header("X-GitHub-Delivery"),
    event_type: || Some(EventTypeRule::header("X-GitHub-Event")),
    max_body: 25 << 20,
    sample: None,
};

pub fn params() -> HmacParams {
    HmacParams::body(
        Algorithm::Sha256,
        "X-Hub-Signature-256",
        Encoding::Hex,
        "sha256=",
    )
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    const FIXTURES: &str = include_str!("../../fixtures/github.json");

    #[test]
    fn fixture_passes() {
        fixtures::assert_preset(&super::PRESET, FIXTURES, "wrong");
    }
}
