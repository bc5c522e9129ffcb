//! Intercom: `X-Hub-Signature: sha1=<hex>`, HMAC-SHA1 of the body under the app's client secret;
//! no timestamp.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "intercom",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/id"),
    event_type: || Some(EventTypeRule::json_pointer("/topic")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

fn params() -> HmacParams {
    HmacParams::body(Algorithm::Sha1, "X-Hub-Signature", Encoding::Hex, "sha1=")
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/intercom.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
