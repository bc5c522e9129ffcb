//! Paddle Billing: `Paddle-Signature: ts=<ts>;h1=<hex>[;h1=..]` over `{ts}:{body}`, HMAC-SHA256 under
//! the notification destination's secret key. Paddle's SDKs allow 5 s of skew.

use super::listed::{Layout, Listed};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "paddle",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(Listed::new(LAYOUT, keys.secrets, keys.tolerance)),
    tolerance: Some(Duration::from_secs(5)),
    event_id: || EventIdRule::json_pointer("/event_id"),
    event_type: || Some(EventTypeRule::json_pointer("/event_type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

const LAYOUT: Layout = Layout {
    header: "paddle-signature",
    separator: ';',
    timestamp: Some(("ts", ":")),
    signature_key: "h1",
};

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/paddle.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
