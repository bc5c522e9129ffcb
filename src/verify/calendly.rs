//! Calendly: `Calendly-Webhook-Signature: t=<ts>,v1=<hex>` over `{t}.{body}`, HMAC-SHA256 under the
//! webhook signing key; Calendly's docs allow 3 minutes. Payloads carry no event id.

use super::listed::{Layout, Listed};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "calendly",
    keys: KeyKind::Secrets,
    extra_keys: &[],
    build: |keys| scheme(Listed::new(LAYOUT, keys.secrets, keys.tolerance)),
    tolerance: Some(Duration::from_secs(180)),
    event_id: || EventIdRule::body_sha256(),
    event_type: || Some(EventTypeRule::json_pointer("/event")),
    max_body: DEFAULT_MAX_BODY,
    sample: None,
};

const LAYOUT: Layout = Layout {
    header: "calendly-webhook-signature",
    separator: ',',
    timestamp: Some(("t", ".")),
    signature_key: "v1",
};

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/calendly.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
