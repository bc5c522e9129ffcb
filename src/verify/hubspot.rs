//! HubSpot (v3): `X-HubSpot-Signature-v3: <base64>`, HMAC-SHA256 under the app's client secret of
//! `POST` + the request URI + the body + `X-HubSpot-Request-Timestamp` (milliseconds), refused
//! beyond 5 minutes. The URI is the configured `public_url`. Bodies are batches of events, so
//! identical bodies are one event.

use super::hmac::{HmacParams, HmacScheme, Template, TimeFormat, TimestampRule};
use super::mac::{Algorithm, Encoding};
use super::preset::{DEFAULT_MAX_BODY, KeyKind, Preset, scheme};
use crate::event_id::EventIdRule;
use crate::event_type::EventTypeRule;
use std::time::Duration;

pub const PRESET: Preset = Preset {
    name: "hubspot",
    keys: KeyKind::Secrets,
    extra_keys: &["public_url"],
    build: |keys| {
        let url = keys.public_url("hubspot")?;
        let params = HmacParams {
            template: Template::after_literal(&format!("POST{url}"), "{body}{timestamp}"),
            timestamp: Some(TimestampRule {
                header: "x-hubspot-request-timestamp".into(),
                tolerance: keys.tolerance,
                format: TimeFormat::Milliseconds,
            }),
            ..HmacParams::body(
                Algorithm::Sha256,
                "X-HubSpot-Signature-v3",
                Encoding::Base64,
                "",
            )
        };
        scheme(HmacScheme::new(params, keys.secrets))
    },
    tolerance: Some(Duration::from_secs(300)),
    event_id: EventIdRule::body_sha256,
    // The first event's; a batch may mix types.
    event_type: || Some(EventTypeRule::json_pointer("/0/subscriptionType")),
    max_body: DEFAULT_MAX_BODY,
    sample: Some(|id, event_type| {
        serde_json::json!([{ "eventId": id, "subscriptionType": event_type }])
            .to_string()
            .into_bytes()
    }),
};

#[cfg(test)]
mod tests {
    use crate::verify::fixtures;

    #[test]
    fn fixture_passes() {
        let fixtures = include_str!("../../fixtures/hubspot.json");
        fixtures::assert_preset(&super::PRESET, fixtures, "wrong");
    }
}
