//! Postgres or Redis going away, simulated by cutting or freezing a proxy owned by the test.

mod common;

use common::delivery::{self, assert_nothing_redelivered, fast_worker, http_destination};
use common::proxy::{Proxy, postgres_addr, postgres_via, redis_addr};
use common::sink::Sink;
use common::{Running, TestEnv, redis_url, sign};
use hookgate::app::{Gateway, Roles};

const SOURCE: &str = r#"
    [[sources]]
    name = "github"
    provider = "github"
    secrets = ["s3cret"]
"#;

fn webhook(delivery: &str) -> Vec<(String, String)> {
    sign::github("s3cret", delivery, b"{}")
}

#[tokio::test]
async fn postgres_outage_answers_503_and_claims_nothing() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start(postgres_addr(&env)).await;
    // Only the receiver: a worker would consume the stream entries counted below.
    let gw = Running::start_with_roles(
        env.config_with(&postgres_via(&env, &proxy), &redis_url(), SOURCE),
        Roles::RECEIVER,
    )
    .await;
    assert_eq!(
        gw.post("github", &webhook("before"), b"{}").await.json["status"],
        "accepted"
    );

    proxy.cut();
    let reply = gw.post("github", &webhook("during"), b"{}").await;
    reply.assert_problem(503, "unavailable");
    assert_eq!(reply.retry_after.as_deref(), Some("5"));
    // Even a retry of a stored event cannot be confirmed while Postgres is away.
    gw.post("github", &webhook("before"), b"{}")
        .await
        .assert_problem(503, "unavailable");
    let ready = gw.get("/readyz").await;
    ready.assert_problem(503, "not-ready");
    assert_eq!(ready.json["detail"], "unreachable: postgres");

    proxy.restore().await;
    // Nothing was stored during the outage: the provider's retry is a first arrival.
    assert_eq!(
        gw.post("github", &webhook("during"), b"{}").await.json["status"],
        "accepted"
    );
    assert_eq!(env.count("SELECT count(*) FROM events").await, 2);
    assert_eq!(env.stream_len("github").await, 2);
}

/// Redis is away at ingest: the webhook is still acknowledged (it is committed), and once
/// Redis is back the scheduler enqueues it and it is delivered.
#[tokio::test]
async fn redis_outage_still_accepts_and_the_event_is_delivered_after() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let proxy = Proxy::start(redis_addr()).await;
    let redis_via_proxy = format!("redis://{}", proxy.addr);
    let sources = format!(
        r#"
        [worker]
        schedule_interval = "50ms"
        {SOURCE}
          [[sources.destinations]]
          name = "billing"
          url = "{}"
        "#,
        sink.url
    );
    let gw = Running::start(env.config_with(&env.database_url, &redis_via_proxy, &sources)).await;

    proxy.cut();
    let reply = gw
        .post("github", &webhook("while-redis-is-down"), b"{}")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["status"], "accepted");
    assert_eq!(
        env.stream_len("github").await,
        0,
        "the XADD could not happen"
    );
    let ready = gw.get("/readyz").await;
    assert_eq!(ready.json["detail"], "unreachable: redis");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sink.received().is_empty());

    proxy.restore().await;
    let delivered = sink.wait_for(1, std::time::Duration::from_secs(20)).await;
    assert_eq!(delivered[0].header("hookgate-source"), "github");
    assert_eq!(
        delivered[0].header("webhook-id"),
        format!("{}_billing", reply.json["id"].as_str().unwrap())
    );
}

/// Redis goes away while operators replay dead letters, then comes back: replays made after
/// it is back are enqueued again (the error does not stick to the process).
#[tokio::test]
async fn replays_are_enqueued_again_once_redis_is_back() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start(redis_addr()).await;
    let redis_via_proxy = format!("redis://{}", proxy.addr);
    let token = "outage-test-token-0123456789";
    let sources = format!(
        r#"
        [[admin_tokens]]
        name = "oncall"
        token = "{token}"
        scopes = ["read", "replay"]
        {SOURCE}
          [[sources.destinations]]
          name = "ci"
          url = "http://127.0.0.1:9/"
        "#
    );
    // Only the receiver: no scheduler enqueues behind the replays' back.
    let gw = Running::start_with_roles(
        env.config_with(&env.database_url, &redis_via_proxy, &sources),
        Roles::RECEIVER,
    )
    .await;
    let replay = |id: uuid::Uuid| {
        let request = gw
            .http
            .post(format!("{}/v1/dead-letters/{id}/replay", gw.admin))
            .bearer_auth(token);
        async move {
            let reply = common::Reply::from(request.send().await.unwrap()).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            reply.json["enqueued"].as_bool().unwrap()
        }
    };
    let mut letters = Vec::new();
    for n in 0..3 {
        let at = format!("2026-11-23T08:00:0{n}Z");
        letters.push(common::seed::dead_letter(&env.db, "github", "ci", &at).await);
    }

    assert!(replay(letters[0]).await);
    proxy.cut();
    assert!(!replay(letters[1]).await, "Redis is away");
    proxy.restore().await;
    // Replays back off from Redis for 2 s after an error.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    assert!(replay(letters[2]).await, "Redis is back");
    assert_eq!(env.stream_len("github").await, 2);
}

/// Postgres goes away under a worker while acknowledged events wait on the stream: nothing is
/// delivered while it is away (no claim can be recorded), nothing is lost, and every event is
/// delivered once it is back.
#[tokio::test]
async fn a_postgres_outage_under_the_worker_delays_deliveries_and_loses_none() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let proxy = Proxy::start(postgres_addr(&env)).await;
    let sources = format!(
        r#"
        [worker]
        visibility_timeout = "1s"
        schedule_interval = "50ms"
        {SOURCE}
          [[sources.destinations]]
          name = "billing"
          url = "{}"
          timeout = "500ms"
        "#,
        sink.url
    );
    let receiver = Running::start_with_roles(env.config(&sources), Roles::RECEIVER).await;
    let worker = Gateway::start(
        env.config_with(&postgres_via(&env, &proxy), &redis_url(), &sources),
        Roles::WORKER,
    )
    .await
    .unwrap();

    proxy.cut();
    for n in 0..5 {
        let reply = receiver
            .post("github", &webhook(&format!("pg-away-{n}")), b"{}")
            .await;
        assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(sink.received().is_empty(), "delivered without Postgres");

    proxy.restore().await;
    sink.wait_for(5, std::time::Duration::from_secs(20)).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 5)
        .await;
    let mut ids: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    worker.shutdown_token().cancel();
    worker.wait().await.unwrap();
}

/// Postgres hangs in the middle of an insert: the statement reached it, and no answer comes
/// back. (Freezing the link before the webhook would not get that far: the pool checks a
/// connection before handing it out, and gives up on that sooner.) So the insert is made to
/// wait inside Postgres for a rival transaction of the test's, the link is frozen, and the
/// rival gives way: the commit lands while the receiver hears nothing. The provider gets 503
/// once the insert timeout passes, its retry after the thaw is a duplicate, and the event,
/// which ingest never enqueued, is delivered once by the scheduler.
#[tokio::test]
async fn a_hung_postgres_answers_503_after_the_insert_timeout_and_the_retry_is_a_duplicate() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let proxy = Proxy::start(postgres_addr(&env)).await;
    let sources = delivery::config(
        "github",
        &fast_worker(),
        3,
        &http_destination("billing", &sink, "4s"),
    );
    let receiver = Running::start_with_roles(
        env.config_with(&postgres_via(&env, &proxy), &redis_url(), &sources),
        Roles::RECEIVER,
    )
    .await;
    let worker = Gateway::start(env.config(&sources), Roles::WORKER)
        .await
        .unwrap();

    // The same event, inserted and not committed: the receiver's insert waits for it once it
    // executes (a table lock would stop it earlier, while it is prepared, and nothing would
    // be left to commit).
    let mut rival = env.db.begin().await.unwrap();
    common::seed::event(&mut *rival, "github", "hung", "now", "pending").await;
    let hang = async {
        env.wait_for_count(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'
               AND application_name = current_setting('application_name')",
            1,
        )
        .await;
        proxy.freeze();
        rival.rollback().await.unwrap();
        env.wait_for_count("SELECT count(*) FROM events", 1).await;
    };
    let headers = webhook("hung");
    let (reply, ()) = tokio::join!(receiver.post("github", &headers, b"{}"), hang);
    reply.assert_problem(503, "unavailable");
    assert_eq!(reply.retry_after.as_deref(), Some("5"));

    proxy.thaw();
    let retry = receiver.post("github", &headers, b"{}").await;
    assert_eq!(retry.json["status"], "duplicate", "{retry:?}");
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM events")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(retry.json["id"], id.to_string());
    assert_nothing_redelivered(&env, "github", &sink, 1).await;
    assert_eq!(
        sink.received()[0].header("webhook-id"),
        format!("{id}_billing")
    );
    worker.shutdown_token().cancel();
    worker.wait().await.unwrap();
}
