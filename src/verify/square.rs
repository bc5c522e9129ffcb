//! Square: `x-square-hmacsha256-signature: <base64>`, HMAC-SHA256 of the notification URL followed
//! by the body, under the subscription's signature key. The URL must be configured as
//! `public_url` exactly as registered with Square. No timestamp.

use super::hmac::{HmacParams, HmacScheme, Template};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "square",
    keys: KeyKind::Secrets,
    extra_keys: &["public_url"],
    build: |keys| {
        let url = keys.public_url("square")?;
        let params = HmacParams {
            template: Template::after_literal(&url, "{body}"),
            ..HmacParams::body(
                Algorithm::Sha256,
                "x-square-hmacsha256-signature",
                Encoding::Base64,
                "",
            )
        };
        scheme(HmacScheme::new(params, keys.secrets))
    },
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/event_id"),
    event_type: || Some(EventTypeRule::json_pointer("/type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/square.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
