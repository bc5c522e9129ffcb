//! Preset keys: what each preset needs beyond `secrets`, and what it refuses.

use crate::config::{Config, ConfigError};

fn problems(sources: &str) -> Vec<String> {
    let text = format!(
        "database_url = \"postgres://127.0.0.1/x\"\nredis_url = \"redis://127.0.0.1\"\n{sources}"
    );
    match Config::parse("test.toml", &text, &|_| None) {
        Err(ConfigError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| p.message).collect()
        }
        other => panic!("expected invalid config, got {other:?}"),
    }
}

fn assert_problems(sources: &str, expected: &[&str]) {
    let found = problems(sources);
    for e in expected {
        assert!(
            found.iter().any(|p| p.starts_with(e)),
            "missing {e:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn presets_that_sign_their_url_need_public_url() {
    assert_problems(
        r#"
        [[sources]]
        name = "t"
        provider = "twilio"
        secrets = ["token"]

        [[sources]]
        name = "sq"
        provider = "square"
        secrets = ["key"]
        public_url = "webhook.example.com/square"

        [[sources]]
        name = "hs"
        provider = "hubspot"
        secrets = ["s"]
        "#,
        &[
            "sources[0].public_url: required for provider = \"twilio\": it signs the URL",
            "sources[1].public_url: \"webhook.example.com/square\" must be an absolute http(s) URL",
            "sources[2].public_url: required for provider = \"hubspot\"",
        ],
    );
}

#[test]
fn asymmetric_presets_need_valid_public_keys_not_secrets() {
    assert_problems(
        r#"
        [[sources]]
        name = "d"
        provider = "discord"
        secrets = ["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"]

        [[sources]]
        name = "d2"
        provider = "discord"
        public_keys = ["not-hex"]

        [[sources]]
        name = "sg"
        provider = "sendgrid"
        public_keys = ["bm90IGEga2V5"]

        [[sources]]
        name = "std"
        provider = "standard"

        [[sources]]
        name = "gh"
        provider = "github"
        secrets = ["s"]
        public_keys = ["whpk_x"]
        "#,
        &[
            "sources[0].public_keys: at least one public key is required: provider = \"discord\"",
            "sources[0].secrets: provider = \"discord\" verifies with the provider's public keys",
            "sources[1].public_keys: a Discord public key is 64 hex digits",
            "sources[2].public_keys: a SendGrid verification key is the base64 DER",
            "sources[3].secrets: set secrets (whsec_..) or public_keys (whpk_..), or both",
            "sources[4].public_keys: provider = \"github\" verifies with shared secrets",
        ],
    );
}

#[test]
fn keys_a_preset_does_not_read_are_refused() {
    assert_problems(
        r#"
        [[sources]]
        name = "gh"
        provider = "github"
        secrets = ["s"]
        public_url = "https://example.com/webhooks/gh"
        verify_token = "t"

        [[sources]]
        name = "m"
        provider = "meta"
        secrets = ["s"]
        verify_token = "t"
        tolerance = "1m"

        [[sources]]
        name = "h"
        provider = "hmac"
        secrets = ["s"]
        signature_header = "X-Sig"
        verify_token = "t"
        "#,
        &[
            "sources[0].public_url: provider = \"github\" does not use it",
            "sources[0].verify_token: provider = \"github\" does not use it",
            "sources[1].tolerance: \"meta\" signatures carry no timestamp",
            "sources[2].verify_token: provider = \"hmac\" does not use it",
        ],
    );
}

#[test]
fn presets_build_from_their_keys_with_their_defaults() {
    let text = r#"
        database_url = "postgres://127.0.0.1/x"
        redis_url = "redis://127.0.0.1"

        [[sources]]
        name = "d"
        provider = "discord"
        public_keys = ["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"]

        [[sources]]
        name = "t"
        provider = "twilio"
        secrets = ["token"]
        public_url = "https://example.com/webhooks/t"

        [[sources]]
        name = "gh"
        provider = "github"
        secrets = ["s"]
    "#;
    let config = Config::parse("test.toml", text, &|_| None).unwrap();
    assert_eq!(config.sources[0].provider.as_str(), "discord");
    assert_eq!(config.sources[1].provider.as_str(), "twilio");
    assert_eq!(config.sources[1].max_body, 1 << 20);
    assert_eq!(config.sources[2].max_body, 25 << 20, "GitHub's own limit");
}
