//! Event types: where each provider names them, how they are stored, listed and counted, and
//! how a destination's `events` and `filter` choose the events it gets.

mod common;

use common::admin::{item_ids, uuid};
use common::cli::hookgate;
use common::sink::Sink;
use common::tokens::{VIEWER, admin_tokens};
use common::{Reply, Running, TestEnv, sign};
use serde_json::{Value, json};
use uuid::Uuid;

type Headers = Vec<(String, String)>;

const SECRET: &str = "s3cret";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `headers` with `name` set to `value` (or removed, for `None`).
fn with(mut headers: Headers, name: &str, value: Option<&str>) -> Headers {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.extend(value.map(|v| (name.to_string(), v.to_string())));
    headers
}

fn github(delivery: &str, event: Option<&str>, body: &[u8]) -> Headers {
    with(
        sign::github(SECRET, delivery, body),
        "X-GitHub-Event",
        event,
    )
}

fn stripe(body: &Value) -> (Headers, Vec<u8>) {
    let body = body.to_string().into_bytes();
    (sign::stripe(SECRET, sign::now(), &body), body)
}

fn accepted(reply: &Reply) -> Uuid {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    uuid(&reply.json["id"])
}

async fn stored_type(env: &TestEnv, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT event_type FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .unwrap()
}

/// The destinations an event got a delivery for, sorted.
async fn delivered_to(env: &TestEnv, id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT destination FROM deliveries WHERE event_id = $1 ORDER BY 1")
        .bind(id)
        .fetch_all(&env.db)
        .await
        .unwrap()
}

fn presets() -> String {
    let hmac = |name: &str, event_type: &str| {
        format!(
            r#"
            [[sources]]
            name = "{name}"
            provider = "hmac"
            secrets = ["{SECRET}"]
            signature_header = "X-Sig"
            event_type = {event_type}
            "#
        )
    };
    let preset = |name: &str, secret: &str| {
        format!(
            r#"
            [[sources]]
            name = "{name}"
            provider = "{name}"
            secrets = ["{secret}"]
            "#
        )
    };
    [
        preset("github", SECRET),
        preset("stripe", SECRET),
        preset("standard", STANDARD_SECRET),
        preset("shopify", SECRET),
        preset("slack", SECRET),
        hmac("by-header", r#"{ header = "X-Kind" }"#),
        hmac("by-pointer", r#"{ json_pointer = "/meta/kind" }"#),
    ]
    .concat()
}

#[tokio::test]
async fn each_provider_names_its_type_where_it_says() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&presets()).await;
    let sig = |body: &[u8]| {
        vec![(
            "X-Sig".to_string(),
            hex::encode(sign::hmac_sha256(SECRET.as_bytes(), body)),
        )]
    };
    let slack = br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}"#;
    let (stripe_headers, stripe_body) = stripe(&json!({"id": "evt_1", "type": "invoice.paid"}));
    let standard = br#"{"type":"contact.created"}"#;
    let cases: Vec<(&str, Headers, Vec<u8>, Option<&str>)> = vec![
        (
            "github",
            github("d-1", Some("pull_request"), b"{}"),
            b"{}".to_vec(),
            Some("pull_request"),
        ),
        ("github", github("d-2", None, b"{}"), b"{}".to_vec(), None),
        ("stripe", stripe_headers, stripe_body, Some("invoice.paid")),
        (
            "standard",
            sign::standard(STANDARD_SECRET, "msg_1", sign::now(), standard),
            standard.to_vec(),
            Some("contact.created"),
        ),
        (
            "shopify",
            with(
                sign::shopify(SECRET, "s-1", b"{}"),
                "X-Shopify-Topic",
                Some("orders/create"),
            ),
            b"{}".to_vec(),
            Some("orders/create"),
        ),
        (
            "slack",
            sign::slack(SECRET, sign::now(), slack),
            slack.to_vec(),
            Some("app_mention"),
        ),
        (
            "by-header",
            with(sig(b"a"), "X-Kind", Some("thing.made")),
            b"a".to_vec(),
            Some("thing.made"),
        ),
        (
            "by-pointer",
            sig(br#"{"meta":{"kind":"thing.gone"}}"#),
            br#"{"meta":{"kind":"thing.gone"}}"#.to_vec(),
            Some("thing.gone"),
        ),
        // Not a string at the pointer: accepted, without a type.
        (
            "by-pointer",
            sig(br#"{"meta":{"kind":3}}"#),
            br#"{"meta":{"kind":3}}"#.to_vec(),
            None,
        ),
    ];
    for (source, headers, body, expected) in cases {
        let id = accepted(&gw.post(source, &headers, &body).await);
        assert_eq!(stored_type(&env, id).await.as_deref(), expected, "{source}");
    }
}

fn routed_sources(sink: &str) -> String {
    format!(
        r#"
        {}
        [[sources]]
        name = "stripe"
        provider = "stripe"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "all"
          url = "{sink}"
          [[sources.destinations]]
          name = "invoices"
          url = "{sink}"
          events = ["invoice.*", "customer.created"]
          [[sources.destinations]]
          name = "live"
          url = "{sink}"
          filter = {{ json_pointer = "/livemode", equals = true }}
          [[sources.destinations]]
          name = "star"
          url = "{sink}"
          events = ["*"]

        [[sources]]
        name = "picky"
        provider = "stripe"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "invoices"
          url = "{sink}"
          events = ["invoice.*"]
        "#,
        admin_tokens()
    )
}

#[tokio::test]
async fn a_destination_gets_only_the_events_it_takes() {
    let env = TestEnv::new().await;
    let gw = env
        .start_receiver(&routed_sources("http://127.0.0.1:9/"))
        .await;
    let post = async |source: &str, body: Value| {
        let (headers, body) = stripe(&body);
        accepted(&gw.post(source, &headers, &body).await)
    };
    let invoice = post(
        "stripe",
        json!({"id": "e1", "type": "invoice.paid", "livemode": false}),
    )
    .await;
    let charge = post(
        "stripe",
        json!({"id": "e2", "type": "charge.failed", "livemode": true}),
    )
    .await;
    let untyped = post("stripe", json!({"id": "e3", "livemode": "true"})).await;
    let customer = post("stripe", json!({"id": "e4", "type": "customer.created"})).await;
    assert_eq!(
        delivered_to(&env, invoice).await,
        ["all", "invoices", "star"]
    );
    assert_eq!(delivered_to(&env, charge).await, ["all", "live", "star"]);
    assert_eq!(delivered_to(&env, untyped).await, ["all", "star"]);
    assert_eq!(
        delivered_to(&env, customer).await,
        ["all", "invoices", "star"]
    );

    // No destination takes it: stored, owed to nobody, so settled at once.
    let skipped = post("picky", json!({"id": "e5", "type": "charge.failed"})).await;
    assert!(delivered_to(&env, skipped).await.is_empty());
    let shown = gw.admin_get(&format!("/v1/events/{skipped}"), VIEWER).await;
    assert_eq!(shown.json["status"], "delivered", "{shown:?}");
    assert_eq!(shown.json["event_type"], "charge.failed", "{shown:?}");
    assert_eq!(shown.json["deliveries"], json!([]), "{shown:?}");
    let taken = post("picky", json!({"id": "e6", "type": "invoice.created"})).await;
    assert_eq!(delivered_to(&env, taken).await, ["invoices"]);
}

#[tokio::test]
async fn types_are_shown_and_listed_by_the_api_and_the_cli() {
    let env = TestEnv::new().await;
    let sources = routed_sources("http://127.0.0.1:9/");
    let gw = env.start_receiver(&sources).await;
    let mut ids = Vec::new();
    for (n, event_type) in [
        "invoice.paid",
        "invoice.created",
        "charge_failed",
        "chargeXfailed",
    ]
    .into_iter()
    .enumerate()
    {
        let (headers, body) = stripe(&json!({"id": format!("e{n}"), "type": event_type}));
        ids.push(accepted(&gw.post("stripe", &headers, &body).await));
    }
    let (headers, body) = stripe(&json!({"id": "untyped"}));
    let untyped = accepted(&gw.post("stripe", &headers, &body).await);

    let listed = |query: &str| {
        let path = format!("/v1/events?{query}");
        let gw = &gw;
        async move { gw.admin_get(&path, VIEWER).await }
    };
    let exact = listed("event_type=invoice.paid").await;
    assert_eq!(item_ids(&exact), [ids[0]]);
    assert_eq!(exact.json["items"][0]["event_type"], "invoice.paid");
    let prefix = listed("event_type=invoice.*").await;
    assert_eq!(item_ids(&prefix), [ids[1], ids[0]]);
    // A prefix is taken literally: `_` matches only itself (it would be a wildcard in LIKE).
    let literal = listed("event_type=charge_*").await;
    assert_eq!(item_ids(&literal), [ids[2]]);
    let all = listed("source=stripe").await;
    assert_eq!(all.json["items"][0]["id"], untyped.to_string());
    assert_eq!(all.json["items"][0]["event_type"], Value::Null);
    let bad = listed("event_type=in*voice").await;
    bad.assert_problem(400, "bad-query");
    let one = gw
        .admin_get(&format!("/v1/events/{}", ids[2]), VIEWER)
        .await;
    assert_eq!(one.json["event_type"], "charge_failed", "{one:?}");

    let config = env.config_file(&sources);
    let out = hookgate(
        &config,
        &["events", "list", "--event-type", "invoice.*", "--json"],
    )
    .await;
    assert!(out.ok, "{out:?}");
    let listed: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let listed: Vec<Uuid> = listed.iter().map(|e| uuid(&e["id"])).collect();
    assert_eq!(listed, [ids[1], ids[0]]);
    let out = hookgate(
        &config,
        &["events", "list", "--event-type", "charge_failed"],
    )
    .await;
    assert!(out.ok && out.stdout.contains("charge_failed"), "{out:?}");
    assert!(out.stdout.contains("1 event(s)"), "{out:?}");
    let out = hookgate(&config, &["events", "list", "--event-type", "a*b"]).await;
    assert!(!out.ok, "{out:?}");
    let out = hookgate(&config, &["events", "show", &ids[0].to_string()]).await;
    assert!(out.stdout.contains("type:         invoice.paid"), "{out:?}");
}

#[tokio::test]
async fn the_received_counter_names_types_within_a_bound() {
    let env = TestEnv::new().await;
    // A source name of this test's own: the recorder is shared by the process's tests.
    let sources = format!(
        r#"
        [[sources]]
        name = "metered"
        provider = "github"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "ci"
          url = "http://127.0.0.1:9/"
          events = ["named"]
        "#
    );
    let gw = env.start_receiver(&sources).await;
    let post = async |n: usize, event: Option<&str>| {
        let delivery = format!("m-{n}");
        accepted(
            &gw.post("metered", &github(&delivery, event, b"{}"), b"{}")
                .await,
        );
    };
    // The bound is 50 distinct types besides those the configuration names.
    for n in 0..52 {
        post(n, Some(&format!("t{n:02}"))).await;
    }
    post(100, Some("named")).await;
    post(101, None).await;
    let samples = gw
        .samples("hookgate_webhooks_received_total", "metered")
        .await;
    let count = |label: &str| samples.get(&format!("event_type={label},outcome=accepted"));
    assert_eq!(count("t00"), Some(&1.0), "{samples:#?}");
    assert_eq!(count("t49"), Some(&1.0), "{samples:#?}");
    assert_eq!(count("t50"), None, "{samples:#?}");
    assert_eq!(count("other"), Some(&2.0), "{samples:#?}");
    assert_eq!(count("named"), Some(&1.0), "{samples:#?}");
    assert_eq!(count("none"), Some(&1.0), "{samples:#?}");
}

#[tokio::test]
async fn a_worker_delivers_each_event_only_where_it_is_taken() {
    let env = TestEnv::new().await;
    let (pushes, reviews) = (Sink::start().await, Sink::start().await);
    let sources = format!(
        r#"
        [worker]
        schedule_interval = "20ms"

        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "pushes"
          url = "{}"
          events = ["push"]
          [[sources.destinations]]
          name = "reviews"
          url = "{}"
          events = ["pull_request*"]
          filter = {{ json_pointer = "/action", equals = "opened" }}
        "#,
        pushes.url, reviews.url
    );
    let gw: Running = env.start(&sources).await;
    let send = async |delivery: &str, event: &str, body: &[u8]| {
        accepted(
            &gw.post("github", &github(delivery, Some(event), body), body)
                .await,
        )
    };
    let push = send("w-1", "push", br#"{"ref":"main"}"#).await;
    let opened = send("w-2", "pull_request", br#"{"action":"opened"}"#).await;
    let closed = send("w-3", "pull_request_review", br#"{"action":"closed"}"#).await;
    let other = send("w-4", "issues", br#"{"action":"opened"}"#).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 4)
        .await;
    let got = |sink: &Sink| -> Vec<String> {
        sink.received()
            .iter()
            .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
            .collect()
    };
    assert_eq!(got(&pushes), [r#"{"ref":"main"}"#]);
    assert_eq!(got(&reviews), [r#"{"action":"opened"}"#]);
    assert_eq!(delivered_to(&env, push).await, ["pushes"]);
    assert_eq!(delivered_to(&env, opened).await, ["reviews"]);
    assert!(delivered_to(&env, closed).await.is_empty());
    assert!(delivered_to(&env, other).await.is_empty());
}
