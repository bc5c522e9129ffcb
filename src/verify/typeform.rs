//! Typeform: `Typeform-Signature: sha256=<base64>`, HMAC-SHA256 of the body under the webhook's
//! secret; no timestamp.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "typeform",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/event_id"),
    event_type: || Some(EventTypeRule::json_pointer("/event_type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

fn params() -> HmacParams {
    HmacParams::body(
        Algorithm::Sha256,
        "Typeform-Signature",
        Encoding::Base64,
        "sha256=",
    )
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/typeform.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
