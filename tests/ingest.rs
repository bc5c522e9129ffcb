//! The ingest path over real HTTP, Postgres and Redis.

mod common;

use common::{Reply, Running, TestEnv, sign};
use serde_json::json;

type Headers = Vec<(String, String)>;

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_test_secret";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SHOPIFY_SECRET: &str = "hush";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn all_presets() -> String {
    format!(
        r#"
        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{GITHUB_SECRET}"]
        max_body = "1KiB"

        [[sources]]
        name = "stripe"
        provider = "stripe"
        secrets = ["whsec_old_secret", "{STRIPE_SECRET}"]

        [[sources]]
        name = "standard"
        provider = "standard"
        secrets = ["{STANDARD_SECRET}"]

        [[sources]]
        name = "shopify"
        provider = "shopify"
        secrets = ["{SHOPIFY_SECRET}"]

        [[sources]]
        name = "slack"
        provider = "slack"
        secrets = ["{SLACK_SECRET}"]

        [[sources]]
        name = "custom"
        provider = "hmac"
        secrets = ["custom-secret"]
        signature_header = "X-Custom-Signature"
        prefix = "sha256="
        event_id = {{ json_pointer = "/event/id", body_sha256 = true }}
        "#
    )
}

fn assert_accepted(reply: &Reply) -> String {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    reply.json["id"].as_str().unwrap().to_string()
}

async fn rows(env: &TestEnv) -> i64 {
    env.count("SELECT count(*) FROM events").await
}

#[tokio::test]
async fn each_preset_stores_one_row_and_one_stream_entry() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let now = sign::now();
    let stripe_body = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded"}"#;
    let slack_body = br#"{"type":"event_callback","event_id":"Ev123","event":{"type":"message"}}"#;
    let custom_body = br#"{"event":{"id":"c-1"}}"#;
    let custom_sig = hex::encode(sign::hmac_sha256(b"custom-secret", custom_body));
    // (source, signed headers, body, expected external id)
    let cases: Vec<(&str, Headers, &[u8], &str)> = vec![
        (
            "github",
            sign::github(GITHUB_SECRET, "gh-1", b"{}"),
            b"{}",
            "gh-1",
        ),
        (
            "stripe",
            sign::stripe(STRIPE_SECRET, now, stripe_body),
            stripe_body,
            "evt_1",
        ),
        (
            "standard",
            sign::standard(STANDARD_SECRET, "msg_1", now, b"{\"a\":1}"),
            b"{\"a\":1}",
            "msg_1",
        ),
        (
            "shopify",
            sign::shopify(SHOPIFY_SECRET, "shop-1", b"{}"),
            b"{}",
            "shop-1",
        ),
        (
            "slack",
            sign::slack(SLACK_SECRET, now, slack_body),
            slack_body,
            "Ev123",
        ),
        (
            "custom",
            vec![("X-Custom-Signature".into(), format!("sha256={custom_sig}"))],
            custom_body,
            "c-1",
        ),
    ];
    for (source, headers, body, external_id) in cases {
        let id = assert_accepted(&gw.post(source, &headers, body).await);
        let (stored_source, stored_external, payload): (String, String, Vec<u8>) =
            sqlx::query_as("SELECT source, external_id, payload FROM events WHERE id = $1::uuid")
                .bind(&id)
                .fetch_one(&env.db)
                .await
                .unwrap();
        assert_eq!(
            (stored_source.as_str(), stored_external.as_str()),
            (source, external_id)
        );
        assert_eq!(payload, body, "{source}: raw body stored byte for byte");
        assert_eq!(env.stream_len(source).await, 1, "{source}");
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(env.stream_key(source))
            .arg("-")
            .arg("+")
            .query_async(&mut env.redis.clone())
            .await
            .unwrap();
        let entry: String = entries.ids[0].get("event").unwrap();
        assert_eq!(entry, id, "{source}: the stream entry points at the row");
    }
    assert_eq!(rows(&env).await, 6);
}

#[tokio::test]
async fn published_vectors_are_accepted_over_http() {
    // GitHub and Shopify signatures carry no timestamp, so their published vectors can be
    // replayed as they are; the timed schemes are covered by the verifier unit tests.
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    for (source, file) in [
        ("github", include_str!("../fixtures/github.json")),
        ("shopify", include_str!("../fixtures/shopify.json")),
    ] {
        let fixture: serde_json::Value = serde_json::from_str(file).unwrap();
        for vector in fixture["vectors"].as_array().unwrap() {
            let secret = vector["secret"].as_str().unwrap();
            let headers: Vec<(String, String)> = vector["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let body = vector["body"].as_str().unwrap().as_bytes();
            let config_secret = if source == "github" {
                GITHUB_SECRET
            } else {
                SHOPIFY_SECRET
            };
            let reply = gw.post(source, &headers, body).await;
            if secret == config_secret {
                assert_accepted(&reply);
            } else {
                // A vector signed with another secret than the one configured must fail.
                reply.assert_problem(401, "signature-mismatch");
            }
        }
    }
}

#[tokio::test]
async fn forged_requests_are_refused_with_the_check_that_failed() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let now = sign::now();
    let body = br#"{"id":"evt_forged"}"#;

    let mut tampered = body.to_vec();
    tampered[3] = b'X';
    let reply = gw
        .post("stripe", &sign::stripe(STRIPE_SECRET, now, body), &tampered)
        .await;
    reply.assert_problem(401, "signature-mismatch");

    let reply = gw
        .post("stripe", &sign::stripe("whsec_wrong", now, body), body)
        .await;
    reply.assert_problem(401, "signature-mismatch");
    assert!(
        !reply.json["detail"].as_str().unwrap().contains("whsec"),
        "no secret echoed"
    );

    // Past the 300 s tolerance by a minute: by 1 s, a loaded machine that took a second to
    // answer saw the future timestamp within tolerance and rightly accepted it.
    for skew in [-360, 360] {
        let reply = gw
            .post(
                "stripe",
                &sign::stripe(STRIPE_SECRET, now + skew, body),
                body,
            )
            .await;
        reply.assert_problem(401, "timestamp-outside-tolerance");
    }

    let reply = gw.post("github", &[], b"{}").await;
    reply.assert_problem(401, "signature-header-missing");
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap()
            .contains("x-hub-signature-256")
    );

    let malformed = vec![("Stripe-Signature".to_string(), "v1=abc".to_string())];
    gw.post("stripe", &malformed, body)
        .await
        .assert_problem(401, "signature-header-malformed");

    assert_eq!(rows(&env).await, 0, "nothing forged was stored");
}

#[tokio::test]
async fn the_second_rotated_secret_is_accepted() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    // The stripe source lists an old secret first; this webhook is signed with the second.
    let body = br#"{"id":"evt_rotated"}"#;
    let reply = gw
        .post(
            "stripe",
            &sign::stripe(STRIPE_SECRET, sign::now(), body),
            body,
        )
        .await;
    assert_accepted(&reply);
    let old = gw
        .post(
            "stripe",
            &sign::stripe("whsec_old_secret", sign::now(), br#"{"id":"evt_old"}"#),
            br#"{"id":"evt_old"}"#,
        )
        .await;
    assert_accepted(&old);
}

#[tokio::test]
async fn duplicate_storm_is_accepted_once_stored_once_enqueued_once() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let body = br#"{"id":"evt_storm","object":"event"}"#;
    let headers = sign::stripe(STRIPE_SECRET, sign::now(), body);
    let replies =
        futures::future::join_all((0..50).map(|_| gw.post("stripe", &headers, body))).await;
    let accepted: Vec<_> = replies
        .iter()
        .filter(|r| r.json["status"] == "accepted")
        .collect();
    let duplicates: Vec<_> = replies
        .iter()
        .filter(|r| r.json["status"] == "duplicate")
        .collect();
    assert_eq!(accepted.len(), 1, "{replies:?}");
    assert_eq!(duplicates.len(), 49);
    assert!(replies.iter().all(|r| r.status == 200));
    assert!(
        duplicates
            .iter()
            .all(|r| r.json["id"] == accepted[0].json["id"])
    );
    assert_eq!(rows(&env).await, 1);
    assert_eq!(env.stream_len("stripe").await, 1);
}

/// Concurrent webhooks of several sources, each sent three times, share multi-row inserts:
/// still one row, one stream entry and the right deliveries per event, and every `accepted`
/// answer comes after its row is committed.
#[tokio::test]
async fn a_burst_is_stored_in_shared_batches_with_every_guarantee_kept() {
    let env = TestEnv::new().await;
    let sink = "http://127.0.0.1:9/hook";
    let gw = env
        .start_receiver(&format!(
            r#"
            [[sources]]
            name = "github"
            provider = "github"
            secrets = ["{GITHUB_SECRET}"]
              [[sources.destinations]]
              name = "ci"
              url = "{sink}"
              [[sources.destinations]]
              name = "audit"
              url = "{sink}"

            [[sources]]
            name = "shopify"
            provider = "shopify"
            secrets = ["{SHOPIFY_SECRET}"]
            "#
        ))
        .await;
    const EVENTS: usize = 150;
    let requests = (0..EVENTS * 3).map(|n| {
        let (env, gw) = (&env, &gw);
        async move {
            let i = n % EVENTS;
            let body = format!(r#"{{"n":{i}}}"#);
            let reply = match i % 2 {
                0 => {
                    let headers = sign::github(GITHUB_SECRET, &format!("d-{i}"), body.as_bytes());
                    gw.post("github", &headers, body.as_bytes()).await
                }
                _ => {
                    let headers = sign::shopify(SHOPIFY_SECRET, &format!("w-{i}"), body.as_bytes());
                    gw.post("shopify", &headers, body.as_bytes()).await
                }
            };
            assert_eq!(reply.status, 200, "{reply:?}");
            if reply.json["status"] == "accepted" {
                let stored: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1::uuid")
                        .bind(reply.json["id"].as_str().unwrap())
                        .fetch_one(&env.db)
                        .await
                        .unwrap();
                assert_eq!(stored, 1, "answered before its commit: {reply:?}");
            }
            (i, reply)
        }
    });
    let replies = futures::future::join_all(requests).await;

    let mut ids = std::collections::HashMap::new();
    let mut accepted = 0;
    for (i, reply) in &replies {
        accepted += usize::from(reply.json["status"] == "accepted");
        let id = ids.entry(*i).or_insert_with(|| reply.json["id"].clone());
        assert_eq!(*id, reply.json["id"], "event {i} answered with two ids");
    }
    assert_eq!(accepted, EVENTS);
    assert_eq!(rows(&env).await, EVENTS as i64);
    assert_eq!(env.stream_len("github").await, EVENTS / 2);
    assert_eq!(env.stream_len("shopify").await, EVENTS / 2);
    // Each source's own destinations, whatever it shared a batch with.
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries").await,
        2 * (EVENTS / 2) as i64
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM events WHERE source = 'github' AND status = 'pending'
               AND (SELECT count(*) FROM deliveries WHERE event_id = events.id) = 2"
        )
        .await,
        (EVENTS / 2) as i64
    );
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE source = 'shopify' AND status = 'delivered'")
            .await,
        (EVENTS / 2) as i64
    );
    // Events committed by one statement share its transaction's timestamp: fewer distinct
    // times than events means inserts were shared.
    let statements = env
        .count("SELECT count(DISTINCT received_at) FROM events")
        .await;
    assert!(
        statements < EVENTS as i64,
        "no batch formed: {statements} inserts"
    );
}

#[tokio::test]
async fn a_later_retry_is_a_duplicate_and_is_not_enqueued_again() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let headers = sign::github(GITHUB_SECRET, "delivery-7", b"{}");
    let first = assert_accepted(&gw.post("github", &headers, b"{}").await);
    let retry = gw.post("github", &headers, b"{}").await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json, json!({ "id": first, "status": "duplicate" }));
    assert_eq!(env.stream_len("github").await, 1);
}

/// Svix sends Standard Webhooks under `svix-*` header names: what passes the signature check
/// also has its event id, and a retry is a duplicate.
#[tokio::test]
async fn a_webhook_with_svix_header_names_is_accepted_and_its_retry_is_a_duplicate() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let body = br#"{"type":"invoice.paid"}"#;
    let headers: Headers = sign::standard(STANDARD_SECRET, "msg_svix_1", sign::now(), body)
        .into_iter()
        .map(|(name, value)| (name.replace("webhook-", "svix-"), value))
        .collect();
    assert!(
        headers.iter().any(|(name, _)| name == "svix-id"),
        "{headers:?}"
    );
    assert!(!headers.iter().any(|(name, _)| name.starts_with("webhook-")));

    let first = assert_accepted(&gw.post("standard", &headers, body).await);
    let external: String = sqlx::query_scalar("SELECT external_id FROM events WHERE id = $1::uuid")
        .bind(&first)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(external, "msg_svix_1");
    let retry = gw.post("standard", &headers, body).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.json, json!({ "id": first, "status": "duplicate" }));
    assert_eq!(env.stream_len("standard").await, 1);
}

#[tokio::test]
async fn headers_are_stored_with_credentials_redacted() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let mut headers = sign::github(GITHUB_SECRET, "delivery-h", b"{}");
    headers.push(("Authorization".into(), "Bearer do-not-store".into()));
    let id = assert_accepted(&gw.post("github", &headers, b"{}").await);
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT headers FROM events WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&env.db)
            .await
            .unwrap();
    let stored = stored.to_string();
    assert!(
        stored.contains(r#"["x-github-delivery","delivery-h"]"#),
        "{stored}"
    );
    assert!(
        stored.contains(r#"["authorization","[redacted]"]"#),
        "{stored}"
    );
    assert!(!stored.contains("do-not-store"));
}

#[tokio::test]
async fn bodies_over_the_source_limit_get_413_declared_or_streamed() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let big = vec![b'x'; 1025];
    let headers = sign::github(GITHUB_SECRET, "big", &big);
    gw.post("github", &headers, &big)
        .await
        .assert_problem(413, "payload-too-large");

    // No Content-Length: the limit is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b'x'; 600]), Ok(vec![b'x'; 600])];
    let mut request = gw
        .http
        .post(format!("{}/webhooks/github", gw.base))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
    for (k, v) in &headers {
        request = request.header(k, v);
    }
    Reply::from(request.send().await.unwrap())
        .await
        .assert_problem(413, "payload-too-large");

    let exactly = vec![b'x'; 1024];
    let ok = gw
        .post(
            "github",
            &sign::github(GITHUB_SECRET, "fits", &exactly),
            &exactly,
        )
        .await;
    assert_accepted(&ok);
}

#[tokio::test]
async fn routing_errors_are_problems() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    gw.post("nope", &[], b"{}")
        .await
        .assert_problem(404, "unknown-source");
    gw.get("/webhooks/github")
        .await
        .assert_problem(405, "method-not-allowed");
    gw.get("/elsewhere").await.assert_problem(404, "not-found");
}

#[tokio::test]
async fn a_missing_event_id_is_a_400() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let headers: Vec<_> = sign::github(GITHUB_SECRET, "x", b"{}")
        .into_iter()
        .filter(|(k, _)| k != "X-GitHub-Delivery")
        .collect();
    let reply = gw.post("github", &headers, b"{}").await;
    reply.assert_problem(400, "event-id");
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap()
            .contains("x-github-delivery")
    );
    let no_id = br#"{"object":"event"}"#;
    let reply = gw
        .post(
            "stripe",
            &sign::stripe(STRIPE_SECRET, sign::now(), no_id),
            no_id,
        )
        .await;
    reply.assert_problem(400, "event-id");
    // Postgres text cannot hold NUL: refused as a 400, never a 503 retried forever.
    let nul = br#"{"id":"evt_\u0000","object":"event"}"#;
    let reply = gw
        .post(
            "stripe",
            &sign::stripe(STRIPE_SECRET, sign::now(), nul),
            nul,
        )
        .await;
    reply.assert_problem(400, "event-id");
    assert_eq!(rows(&env).await, 0);
}

#[tokio::test]
async fn generic_hmac_falls_back_to_the_body_hash_as_event_id() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let body = br#"{"no":"id here"}"#;
    let sig = hex::encode(sign::hmac_sha256(b"custom-secret", body));
    let headers = vec![("X-Custom-Signature".to_string(), format!("sha256={sig}"))];
    assert_accepted(&gw.post("custom", &headers, body).await);
    assert_eq!(
        gw.post("custom", &headers, body).await.json["status"],
        "duplicate"
    );
    let external: String = sqlx::query_scalar("SELECT external_id FROM events")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(
        external,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))
    );
}

#[tokio::test]
async fn slack_url_verification_is_answered_after_the_signature_check() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    let body = br#"{"token":"x","challenge":"ch-123","type":"url_verification"}"#;
    let reply = gw
        .post("slack", &sign::slack(SLACK_SECRET, sign::now(), body), body)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json, json!({ "challenge": "ch-123" }));
    let forged = gw
        .post("slack", &sign::slack("wrong", sign::now(), body), body)
        .await;
    forged.assert_problem(401, "signature-mismatch");
    assert_eq!(rows(&env).await, 0, "handshakes are not events");
    assert_eq!(env.stream_len("slack").await, 0);
}

#[tokio::test]
async fn metrics_are_on_the_admin_listener_only() {
    let env = TestEnv::new().await;
    let gw: Running = env.start_receiver(&all_presets()).await;
    assert_accepted(
        &gw.post("github", &sign::github(GITHUB_SECRET, "m-1", b"{}"), b"{}")
            .await,
    );
    let text = gw.metrics().await;
    assert!(
        text.contains("hookgate_webhooks_received_total{source=\"github\",outcome=\"accepted\",event_type=\"push\"}"),
        "{text}"
    );
    assert!(
        text.contains("hookgate_ingest_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("hookgate_ingest_batch_size_bucket{le=\"1\"}"),
        "{text}"
    );
    assert_eq!(gw.get("/metrics").await.status, 404);
}

#[tokio::test]
async fn health_and_readiness() {
    let env = TestEnv::new().await;
    let gw = env.start_receiver(&all_presets()).await;
    assert_eq!(gw.get("/healthz").await.status, 200);
    assert_eq!(gw.get("/readyz").await.status, 200);
    let with_id = gw
        .http
        .get(format!("{}/healthz", gw.base))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_id.headers()["x-request-id"],
        "req-42",
        "request id is echoed"
    );
}

/// A receiver already behind refuses at once (503, `Unavailable::Overloaded`) instead of
/// queueing without bound; what it did queue is stored once the database moves again.
#[tokio::test]
async fn a_full_ingest_queue_refuses_at_once_and_stores_what_it_queued() {
    use hookgate::queue::stream::Streams;
    use hookgate::receiver::{Batcher, IngestBudget, Unavailable};
    use hookgate::store::Store;
    use hookgate::store::events::{Inserted, NewEvent};

    let env = TestEnv::new().await;
    let config = env.config(&all_presets());
    let store = Store::connect_lazy(&env.database_url, 4).unwrap();
    store.migrate().await.unwrap();
    let streams = Streams::new(&common::redis_url().into(), &env.prefix).unwrap();
    let batcher = Batcher::spawn(store, streams, 2);
    let budget = IngestBudget::new(1 << 20);
    let source = config.source("github").unwrap();
    let event = |n: usize| {
        let body = format!(r#"{{"n":{n}}}"#);
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in sign::github(GITHUB_SECRET, &format!("q-{n}"), body.as_bytes()) {
            headers.insert(
                axum::http::HeaderName::try_from(name).unwrap(),
                value.parse().unwrap(),
            );
        }
        NewEvent {
            verified: source
                .verifier
                .verify(&headers, body.as_bytes(), sign::now())
                .unwrap(),
            source: "github".into(),
            external_id: format!("q-{n}"),
            event_type: None,
            payload: body.into(),
            headers: json!([]),
            destinations: vec![],
            max_attempts: 1,
        }
    };

    // Inserts wait behind this lock, so the flushers stall on the first webhooks. The test's
    // runtime is single-threaded: every `ingest` below tries its queue slot before a flusher
    // runs, so exactly the queue's 2 slots are taken.
    let mut lock = env.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let sent = futures::future::join_all(
        (0..20).map(|n| batcher.ingest(event(n), budget.reserve(0).unwrap())),
    );
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        lock.rollback().await.unwrap();
    };
    let (outcomes, ()) = tokio::join!(sent, release);

    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Inserted::New(_))))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(Unavailable::Overloaded(2))))
        .count();
    assert_eq!((stored, refused), (2, 18), "{outcomes:?}");
    assert_eq!(rows(&env).await, 2);
}
