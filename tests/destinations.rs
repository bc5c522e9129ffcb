//! Destinations: pause and resume (`/v1/destinations/...`, `hookgate destinations`) and the
//! circuit breaker, against real Postgres, Redis and HTTP destinations.

mod common;

use common::admin::send as request;
use common::cli::hookgate_as;
use common::delivery::{self, http_destination, send};
use common::sink::{Answer, Sink};
use common::tokens::{ONCALL, VIEWER, admin_tokens};
use common::{Running, TestEnv};
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// One delivery at a time, so the order of arrival at the sink is the order of delivery.
fn one_at_a_time() -> String {
    format!(
        r#"concurrency = 1
        visibility_timeout = "{}ms"
        schedule_interval = "20ms"
        shutdown_deadline = "2s""#,
        delivery::VISIBILITY.as_millis()
    )
}

/// Source `source` delivering to `sink` as `billing` (with `breaker` keys) and to the `others`
/// destinations, one delivery at a time, with admin tokens.
fn config(source: &str, sink: &Sink, max_attempts: u32, breaker: &str, others: &str) -> String {
    let billing = format!(
        "{}{breaker}\n{others}",
        http_destination("billing", sink, "4s")
    );
    let text = delivery::config(source, &one_at_a_time(), max_attempts, &billing);
    format!("{}\n{text}", admin_tokens())
}

async fn scalar(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&env.db)
        .await
        .unwrap()
}

/// One text value, or "none" without a row.
async fn text(env: &TestEnv, sql: &str) -> String {
    let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_optional(&env.db)
        .await
        .unwrap();
    value.unwrap_or_else(|| "none".to_string())
}

/// Polls `sql` (one text value) until it is `expected`.
async fn wait_for_text(env: &TestEnv, sql: &str, expected: &str) {
    let started = Instant::now();
    loop {
        let value = text(env, sql).await;
        if value == expected {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "{sql}: {value}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Attempts at `billing`.
async fn attempts(env: &TestEnv) -> i64 {
    let sql =
        "SELECT coalesce(sum(attempts), 0)::int8 FROM deliveries WHERE destination = 'billing'";
    scalar(env, sql).await
}

async fn post(gw: &Running, path: &str, token: &str) -> common::Reply {
    request(gw.admin_request(Method::POST, path, token)).await
}

/// The listing's entry for `source`/`destination`.
async fn listed(gw: &Running, source: &str, destination: &str) -> Value {
    let reply = gw.admin_get("/v1/destinations", VIEWER).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    (reply.json["items"].as_array().unwrap().iter())
        .find(|d| d["source"] == source && d["destination"] == destination)
        .unwrap_or_else(|| panic!("{source}/{destination} is not listed: {reply:?}"))
        .clone()
}

/// Waits until the leader's gauges say `state` for `billing` of `source`.
async fn wait_for_gauge(gw: &Running, source: &str, state: &str) {
    let started = Instant::now();
    loop {
        let samples = gw.samples("hookgate_destination_state", source).await;
        let current: Vec<&String> = (samples.iter())
            .filter(|(labels, value)| labels.starts_with("destination=billing,") && **value == 1.0)
            .map(|(labels, _)| labels)
            .collect();
        if current == [&format!("destination=billing,state={state}")] {
            let zeros = (samples.iter())
                .filter(|(labels, v)| labels.starts_with("destination=billing,") && **v == 0.0)
                .count();
            assert_eq!(zeros, 3, "one state at a time: {samples:?}");
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "gauges: {samples:?}, expected {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A paused destination takes its events into its backlog without spending attempts, stays
/// paused across a restart, and after resume gets the backlog in order of arrival.
#[tokio::test]
async fn a_pause_holds_the_backlog_across_a_restart_and_resume_delivers_it_in_order() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let text = config("pausing", &sink, 5, "", "");
    let gw = env.start(&text).await;

    let reply = post(&gw, "/v1/destinations/pausing/billing/pause", ONCALL).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["state"], "paused");
    assert_eq!(reply.json["paused_by"], "oncall");
    // Pausing again changes nothing, and records nothing.
    let again = post(&gw, "/v1/destinations/pausing/billing/pause", ONCALL).await;
    assert_eq!(again.status, 200, "{again:?}");

    let mut bodies = Vec::new();
    for i in 0..6 {
        let body = format!(r#"{{"n":{i}}}"#);
        send(&gw, "pausing", &format!("p-{i}"), body.as_bytes()).await;
        bodies.push(body);
    }
    // Each event reaches a worker and is parked for the scheduler, unattempted.
    env.wait_for_count(
        "SELECT count(*) FROM deliveries WHERE requeue_at = 'infinity'",
        6,
    )
    .await;
    env.wait_for_count("SELECT count(*) FROM deliveries WHERE attempts > 0", 0)
        .await;
    assert_eq!(env.stream_pending("pausing").await, 0, "entries finished");
    let entry = listed(&gw, "pausing", "billing").await;
    assert_eq!(entry["pending"], 6, "{entry}");
    assert!(
        entry["oldest_pending_age_seconds"].as_f64().is_some(),
        "{entry}"
    );
    wait_for_gauge(&gw, "pausing", "paused").await;

    gw.stop().await;
    let gw = env.start(&text).await;
    assert_eq!(listed(&gw, "pausing", "billing").await["state"], "paused");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sink.received().is_empty(), "a restart does not resume");
    assert_eq!(attempts(&env).await, 0);

    let file = env.config_file(&text);
    let out = hookgate_as(
        &file,
        Some("alice"),
        &["destinations", "resume", "pausing", "billing"],
    )
    .await;
    assert!(out.ok, "{out:?}");
    assert_eq!(out.stdout, "pausing/billing resumed\n");
    let received = sink.wait_for(6, WAIT).await;
    let arrived: Vec<String> = (received.iter())
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    assert_eq!(arrived, bodies, "delivered in order of arrival");
    env.wait_for_count(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 1",
        6,
    )
    .await;
    wait_for_gauge(&gw, "pausing", "closed").await;

    let actions: Vec<(String, String, Value)> =
        sqlx::query_as("SELECT actor, action, target FROM admin_actions ORDER BY at, id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    let target = serde_json::json!({"source": "pausing", "destination": "billing"});
    assert_eq!(
        actions,
        [
            ("oncall".to_string(), "pause".to_string(), target.clone()),
            ("cli:alice".to_string(), "resume".to_string(), target),
        ]
    );
    let out = hookgate_as(
        &file,
        Some("alice"),
        &["destinations", "resume", "pausing", "billing"],
    )
    .await;
    assert_eq!(
        out.stdout,
        "pausing/billing was already resumed: nothing changed\n"
    );
}

/// The routes answer 404 for what is not configured and need the replay scope; the listing
/// and the CLI show every configured destination.
#[tokio::test]
async fn unknown_destinations_are_not_found_and_pausing_needs_the_replay_scope() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let text = config("listing", &sink, 5, "", "");
    let gw = env.start(&text).await;
    for path in [
        "/v1/destinations/listing/nowhere/pause",
        "/v1/destinations/elsewhere/billing/resume",
    ] {
        let reply = post(&gw, path, ONCALL).await;
        reply.assert_problem(404, "not-found");
    }
    let reply = post(&gw, "/v1/destinations/listing/billing/pause", VIEWER).await;
    assert_eq!(reply.status, 403, "{reply:?}");
    let entry = listed(&gw, "listing", "billing").await;
    assert_eq!(entry["state"], "closed");
    assert_eq!(entry["breaker"]["failures"], 0);
    assert_eq!(entry["pending"], 0);

    let file = env.config_file(&text);
    let out = hookgate_as(
        &file,
        Some("bob"),
        &["destinations", "pause", "listing", "nowhere"],
    )
    .await;
    assert!(!out.ok, "{out:?}");
    assert!(
        out.stderr
            .contains("no destination listing/nowhere is configured"),
        "{out:?}"
    );
    let out = hookgate_as(
        &file,
        Some("bob"),
        &["destinations", "pause", "listing", "billing"],
    )
    .await;
    assert!(out.ok, "{out:?}");
    let out = hookgate_as(&file, Some("bob"), &["destinations", "list"]).await;
    assert!(out.ok, "{out:?}");
    assert!(out.stdout.starts_with("SOURCE "), "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("listing") && l.contains(" paused ")),
        "{out:?}"
    );
    assert_eq!(
        scalar(
            &env,
            "SELECT count(*) FROM admin_actions WHERE actor = 'cli:bob' AND action = 'pause'"
        )
        .await,
        1
    );
}

/// After `breaker_failures` failed attempts the breaker opens: deliveries wait without
/// spending attempts; a failed probe reopens it for twice as long; once the destination
/// heals, a probe closes it and the backlog is delivered. Another destination of the same
/// events is not held up meanwhile.
#[tokio::test]
async fn a_breaker_opens_after_failures_and_a_probe_closes_it_when_the_destination_heals() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer::status(503));
    let breaker = r#"breaker_failures = 3
        breaker_cool_down = "2s"
        breaker_max_cool_down = "1m""#;
    let ledger = Sink::start().await;
    let others = http_destination("ledger", &ledger, "4s");
    let gw = env
        .start(&config("breaking", &sink, 50, breaker, &others))
        .await;
    for i in 0..3 {
        send(
            &gw,
            "breaking",
            &format!("b-{i}"),
            format!(r#"{{"n":{i}}}"#).as_bytes(),
        )
        .await;
    }
    let state = "SELECT state FROM destinations WHERE destination = 'billing'";
    wait_for_text(&env, state, "open").await;
    ledger.wait_for(3, WAIT).await;
    let opened_at = attempts(&env).await;
    assert_eq!(
        scalar(
            &env,
            "SELECT failures::int8 FROM destinations WHERE destination = 'billing'"
        )
        .await,
        3,
        "opened at the threshold"
    );
    let entry = listed(&gw, "breaking", "billing").await;
    assert_eq!(entry["state"], "open", "{entry}");
    assert!(
        entry["last_error"].as_str().unwrap().contains("503"),
        "{entry}"
    );

    // The probe after the cool-down fails: open again, for twice the cool-down, one attempt on.
    wait_for_text(
        &env,
        "SELECT state || ' ' || cool_down_ms FROM destinations WHERE destination = 'billing'",
        "open 4000",
    )
    .await;
    assert_eq!(
        attempts(&env).await,
        opened_at + 1,
        "only the probe was attempted"
    );
    wait_for_gauge(&gw, "breaking", "open").await;
    assert_eq!(
        attempts(&env).await,
        opened_at + 1,
        "nothing attempted while open"
    );

    sink.set_default(Answer::status(200));
    wait_for_text(&env, state, "closed").await;
    env.wait_for_count(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        6,
    )
    .await;
    assert_eq!(ledger.received().len(), 3, "the ledger got each event once");
    assert_eq!(
        scalar(
            &env,
            "SELECT failures::int8 FROM destinations WHERE destination = 'billing'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &env,
            "SELECT count(*) FROM deliveries WHERE requeue_at = 'infinity'"
        )
        .await,
        0,
        "nothing left waiting"
    );
    wait_for_gauge(&gw, "breaking", "closed").await;
}
