//! Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>` over the body under the webhook's secret;
//! no timestamp.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "bitbucket",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    event_id: || EventIdRule::header("X-Request-UUID"),
    event_type: || Some(EventTypeRule::header("X-Event-Key")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

fn params() -> HmacParams {
    HmacParams::body(
        Algorithm::Sha256,
        "X-Hub-Signature",
        Encoding::Hex,
        "sha256=",
    )
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/bitbucket.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
