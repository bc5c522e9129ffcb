//! Handshakes a provider requires before it sends real events. They are answered only after
//! the signature check, and never stored or enqueued.

use crate::config::Provider;
use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

/// Slack will not enable an Events API endpoint until it echoes the `challenge` of a
/// `url_verification` request.
pub fn answer(provider: Provider, body: &[u8]) -> Option<Json<Value>> {
    #[derive(Deserialize)]
    struct UrlVerification<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        challenge: Option<String>,
    }
    if provider != Provider::Slack {
        return None;
    }
    let request: UrlVerification = serde_json::from_slice(body).ok()?;
    match (request.kind, request.challenge) {
        ("url_verification", Some(challenge)) => Some(Json(json!({ "challenge": challenge }))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slack_url_verification_is_answered() {
        let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let Json(answer) = answer(Provider::Slack, body).unwrap();
        assert_eq!(
            answer["challenge"],
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );
        assert!(super::answer(Provider::Github, body).is_none());
        assert!(super::answer(Provider::Slack, br#"{"type":"event_callback"}"#).is_none());
        assert!(super::answer(Provider::Slack, b"command=%2Fx").is_none());
    }
}
