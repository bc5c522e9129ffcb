//! Webhooks signed as each provider signs them, built before a timed run so that signing costs
//! the load generator nothing while it measures. Written from the providers' documentation, not
//! from hookgate's verifiers, so a verifier bug cannot cancel out. Also used by
//! `benches/verify.rs` (included by path), which is why it depends on nothing else here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signing schemes hookgate has presets for, plus the generic HMAC scheme as configured
/// by `Preset::Hmac`'s source block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Github,
    Stripe,
    Standard,
    Shopify,
    Slack,
    Hmac,
}

impl Preset {
    pub const ALL: [Self; 6] = [
        Self::Github,
        Self::Stripe,
        Self::Standard,
        Self::Shopify,
        Self::Slack,
        Self::Hmac,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The `provider` value of the matching `[[sources]]` entry.
    pub fn name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Stripe => "stripe",
            Self::Standard => "standard",
            Self::Shopify => "shopify",
            Self::Slack => "slack",
            Self::Hmac => "hmac",
        }
    }

    /// A secret of the shape the provider uses (Standard Webhooks needs `whsec_<base64>`).
    pub fn default_secret(self) -> &'static str {
        match self {
            Self::Standard => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Self::Stripe => "whsec_bench_stripe_secret",
            _ => "bench-secret",
        }
    }

    /// The `[[sources]]` keys after `name`, `provider` and `secrets` that this preset needs.
    /// The generic scheme gets a timestamped template, the most work it can be asked to do.
    pub fn extra_source_keys(self) -> &'static str {
        match self {
            Self::Hmac => {
                "signature_header = \"X-Bench-Signature\"\nalgorithm = \"sha256\"\n\
                 encoding = \"hex\"\nprefix = \"sha256=\"\n\
                 signed_content = \"{timestamp}.{body}\"\n\
                 timestamp_header = \"X-Bench-Timestamp\"\n\
                 event_id = { header = \"X-Bench-Id\" }\n"
            }
            _ => "",
        }
    }
}

/// One ready-to-send webhook.
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A JSON body of exactly `size` bytes (or the smallest possible, if `size` is below that)
/// carrying `id` where the provider puts its event id.
pub fn body(preset: Preset, id: &str, size: usize) -> Vec<u8> {
    let head = match preset {
        Preset::Stripe => format!(r#"{{"id":"evt_{id}","object":"event","type":"bench""#),
        // Slack's event id lives in the body; a `type` other than url_verification keeps
        // hookgate from answering it as a handshake.
        Preset::Slack => format!(r#"{{"event_id":"Ev{id}","type":"event_callback""#),
        _ => format!(r#"{{"id":"{id}","action":"bench""#),
    };
    let tail = r#"","padding_end":true}"#;
    let open = r#","padding":""#;
    let fixed = head.len() + open.len() + tail.len();
    let mut out = Vec::with_capacity(size.max(fixed));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(open.as_bytes());
    out.resize(size.max(fixed) - tail.len(), b'x');
    out.extend_from_slice(tail.as_bytes());
    out
}

/// Signs `body` for `preset` with `secret`, `id` as the provider's delivery id and `timestamp`
/// (Unix seconds) where the scheme has one.
pub fn sign(preset: Preset, secret: &str, id: &str, timestamp: i64, body: Vec<u8>) -> Signed {
    let hex_mac = |parts: &[&[u8]]| hex::encode(hmac_sha256(secret.as_bytes(), parts));
    let json = ("Content-Type", "application/json".to_string());
    let headers = match preset {
        Preset::Github => vec![
            (
                "X-Hub-Signature-256",
                format!("sha256={}", hex_mac(&[&body])),
            ),
            ("X-GitHub-Delivery", id.to_string()),
            ("X-GitHub-Event", "push".to_string()),
            json,
        ],
        Preset::Stripe => {
            let sig = hex_mac(&[format!("{timestamp}.").as_bytes(), &body]);
            vec![
                ("Stripe-Signature", format!("t={timestamp},v1={sig}")),
                json,
            ]
        }
        Preset::Standard => {
            // Standard Webhooks keys with the base64-decoded part after `whsec_`.
            let key = BASE64
                .decode(secret.trim_start_matches("whsec_"))
                .unwrap_or_else(|_| secret.as_bytes().to_vec());
            let msg_id = format!("msg_{id}");
            let signed = format!("{msg_id}.{timestamp}.");
            let sig = BASE64.encode(hmac_sha256(&key, &[signed.as_bytes(), &body]));
            vec![
                ("webhook-id", msg_id),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", format!("v1,{sig}")),
                json,
            ]
        }
        Preset::Shopify => vec![
            (
                "X-Shopify-Hmac-Sha256",
                BASE64.encode(hmac_sha256(secret.as_bytes(), &[&body])),
            ),
            ("X-Shopify-Webhook-Id", id.to_string()),
            json,
        ],
        Preset::Slack => {
            let sig = hex_mac(&[format!("v0:{timestamp}:").as_bytes(), &body]);
            vec![
                ("X-Slack-Signature", format!("v0={sig}")),
                ("X-Slack-Request-Timestamp", timestamp.to_string()),
                json,
            ]
        }
        Preset::Hmac => {
            let sig = hex_mac(&[format!("{timestamp}.").as_bytes(), &body]);
            vec![
                ("X-Bench-Signature", format!("sha256={sig}")),
                ("X-Bench-Timestamp", timestamp.to_string()),
                ("X-Bench-Id", id.to_string()),
                json,
            ]
        }
    };
    Signed { headers, body }
}

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}
