//! PagerDuty (v3 webhooks): `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>..]`, HMAC-SHA256 of the body;
//! one `v1` per secret while a secret is being rotated. No timestamp.

use super::listed::{Layout, Listed};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;

pub const PRESET: Preset = Preset {
    name: "pagerduty",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(Listed::new(LAYOUT, keys.secrets, keys.tolerance)),
    tolerance: None,
    event_id: || EventIdRule::json_pointer("/event/id"),
    event_type: || Some(EventTypeRule::json_pointer("/event/event_type")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

const LAYOUT: Layout = Layout {
    header: "x-pagerduty-signature",
    separator: ',',
    timestamp: None,
    signature_key: "v1",
};

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/pagerduty.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
