//! Signing as each provider does, written independently of hookgate's verifiers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn h(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

pub fn github(secret: &str, delivery: &str, body: &[u8]) -> Vec<(String, String)> {
    let sig = hex::encode(hmac_sha256(secret.as_bytes(), body));
    vec![
        h("X-Hub-Signature-256", format!("sha256={sig}")),
        h("X-GitHub-Delivery", delivery),
        h("X-GitHub-Event", "push"),
        h("Content-Type", "application/json"),
    ]
}

pub fn stripe(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let signed = [format!("{timestamp}.").as_bytes(), body].concat();
    let sig = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    vec![
        h("Stripe-Signature", format!("t={timestamp},v1={sig}")),
        h("Content-Type", "application/json"),
    ]
}

/// `secret` is `whsec_<base64>`.
pub fn standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let key = BASE64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let signed = [format!("{id}.{timestamp}.").as_bytes(), body].concat();
    let sig = BASE64.encode(hmac_sha256(&key, &signed));
    vec![
        h("webhook-id", id),
        h("webhook-timestamp", timestamp.to_string()),
        h("webhook-signature", format!("v1,{sig}")),
        h("Content-Type", "application/json"),
    ]
}

pub fn shopify(secret: &str, webhook_id: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        h(
            "X-Shopify-Hmac-Sha256",
            BASE64.encode(hmac_sha256(secret.as_bytes(), body)),
        ),
        h("X-Shopify-Webhook-Id", webhook_id),
        h("Content-Type", "application/json"),
    ]
}

pub fn slack(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let signed = [format!("v0:{timestamp}:").as_bytes(), body].concat();
    let sig = hex::encode(hmac_sha256(secret.as_bytes(), &signed));
    vec![
        h("X-Slack-Signature", format!("v0={sig}")),
        h("X-Slack-Request-Timestamp", timestamp.to_string()),
        h("Content-Type", "application/json"),
    ]
}
