//! Ingress controls per source: `allow_ips` (told through `trusted_proxies`) and a
//! `rate_limit` shared by receiver processes, against real receivers, Postgres and Redis.
//! Neither lets an unverified webhook through; the tests' client is 127.0.0.1.

mod common;

use common::delivery::{SECRET, github_source};
use common::{Running, TestEnv, sign};

/// Posts a webhook signed for `source` (or, `forged`, with the wrong secret), with `extra`
/// headers.
async fn post(
    gw: &Running,
    source: &str,
    id: &str,
    forged: bool,
    extra: &[(&str, &str)],
) -> common::Reply {
    let body = format!(r#"{{"id":"{id}"}}"#);
    let secret = if forged { "wrong" } else { SECRET };
    let mut headers = sign::github(secret, id, body.as_bytes());
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    gw.post(source, &headers, body.as_bytes()).await
}

#[tokio::test]
async fn a_client_outside_allow_ips_is_refused_before_anything_is_stored() {
    let env = TestEnv::new().await;
    let sources = [
        github_source("office", r#"allow_ips = ["10.0.0.0/8", "192.0.2.7"]"#),
        github_source("local", r#"allow_ips = ["127.0.0.0/8"]"#),
    ]
    .concat();
    let gw = env.start_receiver(&sources).await;
    let refused = post(&gw, "office", "d-1", false, &[]).await;
    refused.assert_problem(403, "address-not-allowed");
    assert!(
        refused.json["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{refused:?}"
    );
    // A client that says it is elsewhere, to a receiver that trusts no proxy, is not believed.
    let spoofed = post(
        &gw,
        "office",
        "d-2",
        false,
        &[("X-Forwarded-For", "10.1.2.3")],
    )
    .await;
    spoofed.assert_problem(403, "address-not-allowed");
    assert_eq!(post(&gw, "local", "d-3", false, &[]).await.status, 200);
    // An allowed address is no pass: the signature is still checked.
    post(&gw, "local", "d-4", true, &[])
        .await
        .assert_problem(401, "signature-mismatch");
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
    let received = gw
        .samples("hookgate_webhooks_received_total", "office")
        .await;
    assert_eq!(
        received["event_type=none,outcome=address_not_allowed"], 2.0,
        "{received:?}"
    );
}

#[tokio::test]
async fn a_trusted_proxy_is_believed_about_the_client_it_forwards() {
    let env = TestEnv::new().await;
    let keys = r#"allow_ips = ["203.0.113.0/24"]
        trusted_proxies = ["127.0.0.1"]"#;
    let gw = env.start_receiver(&github_source("proxied", keys)).await;
    let allowed = post(
        &gw,
        "proxied",
        "d-1",
        false,
        &[("X-Forwarded-For", "203.0.113.5")],
    )
    .await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    let outside = post(
        &gw,
        "proxied",
        "d-2",
        false,
        &[("X-Forwarded-For", "198.51.100.7")],
    )
    .await;
    outside.assert_problem(403, "address-not-allowed");
    // What the client wrote in front of the proxy's own entry is not believed.
    let prefixed = [("X-Forwarded-For", "203.0.113.5, 198.51.100.7")];
    post(&gw, "proxied", "d-3", false, &prefixed)
        .await
        .assert_problem(403, "address-not-allowed");
    let garbage = [("X-Forwarded-For", "somewhere")];
    post(&gw, "proxied", "d-4", false, &garbage)
        .await
        .assert_problem(403, "address-not-allowed");
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
}

#[tokio::test]
async fn a_rate_limit_is_shared_by_receivers_and_spent_only_by_verified_webhooks() {
    let env = TestEnv::new().await;
    let sources = github_source("limited", r#"rate_limit = "5/m""#);
    let (a, b) = (
        env.start_receiver(&sources).await,
        env.start_receiver(&sources).await,
    );
    // Forged webhooks are refused by the signature check and use up nothing.
    for i in 0..10 {
        let forged = post(&a, "limited", &format!("f-{i}"), true, &[]).await;
        forged.assert_problem(401, "signature-mismatch");
    }
    // A burst of one minute's worth (5) is taken, from either receiver; then one every 12 s.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let reply = post(gw, "limited", &format!("d-{i}"), false, &[]).await;
        if reply.status == 429 {
            reply.assert_problem(429, "rate-limited");
            let retry_after: u64 = reply.retry_after.as_deref().unwrap().parse().unwrap();
            assert!((1..=12).contains(&retry_after), "{reply:?}");
        }
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(env.count("SELECT count(*) FROM events").await, 5);
    let received = a
        .samples("hookgate_webhooks_received_total", "limited")
        .await;
    assert_eq!(
        received["event_type=none,outcome=rate_limited"], 3.0,
        "{received:?}"
    );
}
