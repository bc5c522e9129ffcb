//! Provider presets over real HTTP: `hookgate send` ends in stored events, and handshakes are
//! answered without being stored.

mod common;

use common::{TestEnv, cli};
use serde_json::json;

const DISCORD_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
/// RFC 8032 section 7.1 TEST 1's seed, whose public key is [`DISCORD_PUBLIC`].
const DISCORD_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

fn sources() -> String {
    format!(
        r#"
        [[sources]]
        name = "gh"
        provider = "github"
        secrets = ["gh-secret"]

        [[sources]]
        name = "tw"
        provider = "twilio"
        secrets = ["twilio-token"]
        public_url = "https://hooks.example.com/webhooks/tw"

        [[sources]]
        name = "mg"
        provider = "mailgun"
        secrets = ["mailgun-key"]

        [[sources]]
        name = "twitch"
        provider = "twitch"
        secrets = ["twitch-secret"]

        [[sources]]
        name = "dc"
        provider = "discord"
        public_keys = ["{DISCORD_PUBLIC}"]

        [[sources]]
        name = "wa"
        provider = "meta"
        secrets = ["meta-secret"]
        verify_token = "my-verify-token"
        "#
    )
}

async fn events(env: &TestEnv, source: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT external_id, event_type FROM events WHERE source = $1")
        .bind(source)
        .fetch_all(&env.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn hookgate_send_signs_as_each_provider_and_the_event_is_stored() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&sources()).await;
    let config = env.config_file(&sources());
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), DISCORD_SEED).unwrap();
    let key_path = key_file.path().to_str().unwrap();
    for (source, id, extra) in [
        ("gh", "delivery-1", vec![]),
        ("tw", "idem-1", vec![]),
        ("mg", "token-1", vec![]),
        ("twitch", "msg-1", vec![]),
        ("dc", "1234", vec!["--signing-key", key_path]),
    ] {
        let url = format!("{}/webhooks/{source}", gw.base);
        let mut args = vec!["send", source, "--id", id, "--event", "ping", "--url", &url];
        args.extend(extra);
        let out = cli::hookgate(&config, &args).await;
        assert!(out.ok, "{source}: {out:?}");
        assert!(out.stdout.starts_with("200 OK"), "{source}: {out:?}");
        assert!(out.stdout.contains("\"accepted\""), "{source}: {out:?}");
        let stored = events(&env, source).await;
        assert_eq!(stored.len(), 1, "{source}");
        assert_eq!(
            stored[0].0,
            if source == "tw" { "idem-1" } else { id },
            "{source}"
        );
    }
    assert_eq!(events(&env, "gh").await[0].1.as_deref(), Some("ping"));
    assert_eq!(events(&env, "dc").await[0].1.as_deref(), Some("ping"));
}

#[tokio::test]
async fn hookgate_send_says_in_one_line_when_it_cannot() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&sources()).await;
    let config = env.config_file(&sources());
    let url = format!("{}/webhooks/dc", gw.base);
    let out = cli::hookgate(&config, &["send", "dc", "--url", &url]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("--signing-key"), "{out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    let out = cli::hookgate(&config, &["send", "nope"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("no source named \"nope\""), "{out:?}");
    assert!(events(&env, "dc").await.is_empty());
}

#[tokio::test]
async fn meta_subscription_challenge_is_answered_on_the_webhook_path() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&sources()).await;
    let get = |query: &'static str, source: &'static str| {
        let url = format!("{}/webhooks/{source}?{query}", gw.base);
        let http = gw.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let ok = get(
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=my-verify-token",
        "wa",
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = get(
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess",
        "wa",
    )
    .await;
    assert_eq!(wrong.status(), 403);
    let elsewhere = get("hub.mode=subscribe&hub.challenge=1", "gh").await;
    assert_eq!(elsewhere.status(), 405);
    assert!(events(&env, "wa").await.is_empty());
}

#[tokio::test]
async fn signed_handshakes_are_answered_and_never_stored() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&sources()).await;
    let vector = |file: &str, name: &str| {
        let fixture: serde_json::Value = serde_json::from_str(file).unwrap();
        let vectors = fixture["vectors"].as_array().unwrap();
        vectors.iter().find(|v| v["name"] == name).unwrap().clone()
    };
    let discord = vector(include_str!("../fixtures/discord.json"), "discord PING");
    let headers: Vec<(String, String)> = (discord["headers"].as_object().unwrap().iter())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let body = discord["body"].as_str().unwrap().as_bytes();
    let pong = gw.post("dc", &headers, body).await;
    assert_eq!(pong.status, 200, "{pong:?}");
    assert_eq!(pong.json, json!({"type": 1}));
    // Discord checks that a bad signature is refused before it enables the endpoint.
    let mut forged = headers.clone();
    for (name, value) in &mut forged {
        if name == "X-Signature-Ed25519" {
            *value = "00".repeat(64);
        }
    }
    let refused = gw.post("dc", &forged, body).await;
    refused.assert_problem(401, "signature-mismatch");
    assert!(events(&env, "dc").await.is_empty());
}
