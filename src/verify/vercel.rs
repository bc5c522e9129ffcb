//! Vercel: `x-vercel-signature: <hex>`, HMAC-SHA1 of the body under the webhook secret; no
//! timestamp.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "vercel",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/id"),
    event_type: || Some(EventTypeRule::json_pointer("/type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

fn params() -> HmacParams {
    HmacParams::body(Algorithm::Sha1, "x-vercel-signature", Encoding::Hex, "")
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/vercel.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
