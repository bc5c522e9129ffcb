//! Sentry integrations: `Sentry-Hook-Signature: <hex>`, HMAC-SHA256 of the body under the
//! integration's client secret. `Sentry-Hook-Timestamp` is sent but not signed, so not checked.

use super::hmac::{HmacParams, HmacScheme};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "sentry",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(HmacScheme::new(params(), keys.secrets)),
    tolerance: None,
    event_id: || EventIdRule::header("Request-ID"),
    event_type: || Some(EventTypeRule::header("Sentry-Hook-Resource")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

fn params() -> HmacParams {
    HmacParams::body(
        Algorithm::Sha256,
        "Sentry-Hook-Signature",
        Encoding::Hex,
        "",
    )
}

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/sentry.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
