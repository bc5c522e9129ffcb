//! Redelivery (`POST /v1/events/{id}/redeliver`, `hookgate events redeliver`) and finding an
//! event by the provider's id, against real Postgres, Redis and HTTP destinations.

mod common;

use common::cli::hookgate;
use common::delivery::{self, fast_worker, http_destination};
use common::sink::Sink;
use common::tokens::{ONCALL, VIEWER, admin_tokens};
use common::{Reply, Running, TestEnv, seed};
use hookgate::app::Roles;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The configured `retry.max_attempts`: a redelivery grants this many more attempts.
const BUDGET: i32 = 4;
const WAIT: Duration = Duration::from_secs(15);

/// Source `github` with destinations `ci` and `cd` that nothing delivers to: for rows seeded in
/// SQL, with a gateway running no worker.
fn seeded_sources() -> String {
    format!(
        r#"
        [retry]
        max_attempts = {BUDGET}
        {}
        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{}"]
          [[sources.destinations]]
          name = "ci"
          url = "http://127.0.0.1:9/"
          [[sources.destinations]]
          name = "cd"
          url = "http://127.0.0.1:9/"
        "#,
        admin_tokens(),
        delivery::SECRET
    )
}

/// Receiver and admin API only: what a redelivery revives stays pending to be inspected.
async fn seeded_gateway(env: &TestEnv) -> Running {
    Running::start_with_roles(env.config(&seeded_sources()), Roles::RECEIVER).await
}

/// An event of `source` with one delivery per `(destination, state, attempts)`, each with
/// `attempts` as its budget (`max_attempts`). The event's status follows its deliveries.
async fn event_with(env: &TestEnv, source: &str, deliveries: &[(&str, &str, i32)]) -> Uuid {
    let status = match deliveries.iter().map(|d| d.1).collect::<Vec<_>>() {
        states if states.contains(&"pending") => "pending",
        states if states.contains(&"dead") => "dead_lettered",
        _ => "delivered",
    };
    let id = seed::event(
        &env.db,
        source,
        &format!("ext-{}", Uuid::new_v4()),
        "2026-11-20T10:00:00Z",
        status,
    )
    .await;
    for (destination, state, attempts) in deliveries {
        sqlx::query(
            "INSERT INTO deliveries (event_id, destination, state, attempts, max_attempts,
                                     next_attempt_at, delivered_at)
             VALUES ($1, $2, $3, $4, $4, '2026-11-20T10:00:00Z',
                     CASE WHEN $3 = 'delivered' THEN now() END)",
        )
        .bind(id)
        .bind(destination)
        .bind(state)
        .bind(attempts)
        .execute(&env.db)
        .await
        .unwrap();
    }
    id
}

/// `(state, attempts, max_attempts, due now)` of one delivery, straight from the table.
async fn delivery_row(env: &TestEnv, event: Uuid, destination: &str) -> (String, i32, i32, bool) {
    sqlx::query_as(
        "SELECT state, attempts, max_attempts, next_attempt_at <= now() FROM deliveries
         WHERE event_id = $1 AND destination = $2",
    )
    .bind(event)
    .bind(destination)
    .fetch_one(&env.db)
    .await
    .unwrap()
}

async fn event_status(env: &TestEnv, event: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
        .bind(event)
        .fetch_one(&env.db)
        .await
        .unwrap()
}

/// The audit trail of the event itself (not of its deliveries), after its arrival:
/// `(from, to, reason)`.
async fn event_transitions(env: &TestEnv, event: Uuid) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT from_state, to_state, reason FROM event_transitions
         WHERE event_id = $1 AND destination IS NULL AND from_state IS NOT NULL ORDER BY id",
    )
    .bind(event)
    .fetch_all(&env.db)
    .await
    .unwrap()
}

async fn redeliver(gw: &Running, event: &str, body: Option<Value>, token: &str) -> Reply {
    let mut request = gw.admin_request(
        Method::POST,
        &format!("/v1/events/{event}/redeliver"),
        token,
    );
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::from(request.send().await.unwrap()).await
}

/// `destination -> state` as the status resource shows them.
fn states(status: &Value) -> Vec<(String, String)> {
    status["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"].as_str().unwrap().to_string(),
                d["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(destination: &str, state: &str) -> (String, String) {
    (destination.to_string(), state.to_string())
}

#[tokio::test]
async fn a_delivered_event_redelivered_reaches_the_consumer_again_with_the_same_webhook_id() {
    let env = TestEnv::new().await;
    let (billing, audit) = (Sink::start().await, Sink::start().await);
    let destinations =
        http_destination("audit", &audit, "4s") + &http_destination("billing", &billing, "4s");
    let config = delivery::config("github", &fast_worker(), 3, &destinations) + &admin_tokens();
    let gw = env.start(&config).await;
    let event = delivery::send(&gw, "github", "d-1", br#"{"n":1}"#).await;
    let first = billing.wait_for(1, WAIT).await;
    audit.wait_for(1, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;

    let reply = redeliver(
        &gw,
        &event,
        Some(json!({"destinations": ["billing"]})),
        ONCALL,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.json["id"], event.as_str());
    assert_eq!(
        states(&reply.json),
        [pair("audit", "delivered"), pair("billing", "retrying")],
        "billing was attempted once already, so it shows as retrying"
    );

    let again = billing.wait_for(2, WAIT).await;
    assert_eq!(again[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(again[1].header("webhook-id"), format!("{event}_billing"));
    assert_eq!(again[1].body, first[0].body);
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let shown = gw.admin_get(&format!("/v1/events/{event}"), VIEWER).await;
    assert_eq!(
        states(&shown.json),
        [pair("audit", "delivered"), pair("billing", "delivered")]
    );
    assert_eq!(
        audit.received().len(),
        1,
        "only the chosen destination is redelivered"
    );
    let id: Uuid = event.parse().unwrap();
    assert_eq!(
        event_transitions(&env, id).await,
        [
            (
                "pending".into(),
                "delivered".into(),
                "every delivery delivered".into()
            ),
            (
                "delivered".into(),
                "pending".into(),
                "a delivery was redelivered".into()
            ),
            (
                "pending".into(),
                "delivered".into(),
                "every delivery delivered".into()
            ),
        ]
    );
}

#[tokio::test]
async fn redelivering_without_a_body_takes_every_destination_and_leaves_pending_ones_as_they_are() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let event = event_with(
        &env,
        "github",
        &[("cd", "pending", 1), ("ci", "delivered", 1)],
    )
    .await;
    let cd_before = delivery_row(&env, event, "cd").await;

    let reply = redeliver(&gw, &event.to_string(), None, ONCALL).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(
        states(&reply.json),
        [pair("cd", "retrying"), pair("ci", "retrying")]
    );
    assert_eq!(
        delivery_row(&env, event, "ci").await,
        ("pending".into(), 1, 1 + BUDGET, true),
        "a fresh budget on top of the attempts made, as a replay gives, due now"
    );
    assert_eq!(delivery_row(&env, event, "cd").await, cd_before);
    assert_eq!(event_status(&env, event).await, "pending");
    assert_eq!(
        env.stream_len("github").await,
        1,
        "the event is back on its stream"
    );
    let reason: String = sqlx::query_scalar(
        "SELECT reason FROM event_transitions WHERE event_id = $1 AND destination = 'ci'",
    )
    .bind(event)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(reason, "redelivered");
}

#[tokio::test]
async fn a_dead_delivery_is_revived_and_its_open_dead_letter_closed() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let letter = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T10:00:00Z").await;
    let event: Uuid = sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE id = $1")
        .bind(letter)
        .fetch_one(&env.db)
        .await
        .unwrap();

    let reply = redeliver(
        &gw,
        &event.to_string(),
        Some(json!({"destinations": ["ci"]})),
        ONCALL,
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(
        delivery_row(&env, event, "ci").await,
        ("pending".into(), 3, 3 + BUDGET, true)
    );
    assert_eq!(event_status(&env, event).await, "pending");
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
            .await,
        0,
        "no dead letter stays open for a delivery pending again"
    );
}

#[tokio::test]
async fn a_destination_no_longer_configured_is_a_conflict_and_nothing_changes() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let event = event_with(
        &env,
        "github",
        &[("ci", "delivered", 1), ("gone", "dead", 3)],
    )
    .await;

    let reply = redeliver(&gw, &event.to_string(), None, ONCALL).await;
    reply.assert_problem(409, "conflict");
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap()
            .contains("github/gone"),
        "{reply:?}"
    );
    assert_eq!(delivery_row(&env, event, "ci").await.0, "delivered");
    assert_eq!(delivery_row(&env, event, "gone").await.0, "dead");
    assert_eq!(event_status(&env, event).await, "dead_lettered");
    assert_eq!(env.stream_len("github").await, 0);
}

#[tokio::test]
async fn unknown_events_and_destinations_bad_bodies_and_read_tokens_are_refused() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let event = event_with(&env, "github", &[("ci", "delivered", 1)]).await;

    let unknown = Uuid::new_v4();
    let reply = redeliver(&gw, &unknown.to_string(), None, ONCALL).await;
    reply.assert_problem(404, "not-found");
    let reply = redeliver(
        &gw,
        &event.to_string(),
        Some(json!({"destinations": ["cd"]})),
        ONCALL,
    )
    .await;
    reply.assert_problem(404, "not-found");
    assert!(
        reply.json["detail"].as_str().unwrap().contains("\"cd\""),
        "{reply:?}"
    );
    let reply = redeliver(
        &gw,
        &event.to_string(),
        Some(json!({"destination": "ci"})),
        ONCALL,
    )
    .await;
    reply.assert_problem(400, "bad-body");
    redeliver(&gw, &event.to_string(), None, VIEWER)
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(delivery_row(&env, event, "ci").await.0, "delivered");
}

#[tokio::test]
async fn events_are_found_by_the_providers_id_over_the_api_and_the_cli() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let github = seed::event(
        &env.db,
        "github",
        "evt-1",
        "2026-11-20T10:00:00Z",
        "pending",
    )
    .await;
    let gitlab = seed::event(
        &env.db,
        "gitlab",
        "evt-1",
        "2026-11-21T10:00:00Z",
        "pending",
    )
    .await;
    seed::event(
        &env.db,
        "github",
        "evt-10",
        "2026-11-22T10:00:00Z",
        "pending",
    )
    .await;
    let ids = |reply: &Reply| -> Vec<String> {
        let items = reply.json["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{reply:?}"));
        items
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };

    let both = gw.admin_get("/v1/events?external_id=evt-1", VIEWER).await;
    assert_eq!(ids(&both), [gitlab.to_string(), github.to_string()]);
    let one = gw
        .admin_get("/v1/events?external_id=evt-1&source=github", VIEWER)
        .await;
    assert_eq!(ids(&one), [github.to_string()]);

    let config = env.config_file(&seeded_sources());
    let out = hookgate(
        &config,
        &[
            "events",
            "list",
            "--external-id",
            "evt-1",
            "--source",
            "gitlab",
            "--json",
        ],
    )
    .await;
    assert!(out.ok, "{out:?}");
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [gitlab.to_string()]);
}

#[tokio::test]
async fn the_cli_redelivers_and_prints_the_new_states_or_fails_in_one_line() {
    let env = TestEnv::new().await;
    // Migrates the schema; the CLI does the work.
    let _gw = seeded_gateway(&env).await;
    let config = env.config_file(&seeded_sources());
    let event = event_with(
        &env,
        "github",
        &[("cd", "delivered", 2), ("ci", "delivered", 1)],
    )
    .await;

    let out = hookgate(
        &config,
        &[
            "events",
            "redeliver",
            &event.to_string(),
            "--destination",
            "cd",
        ],
    )
    .await;
    assert!(out.ok, "{out:?}");
    assert!(out.stdout.contains("redelivering to cd"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("cd ") && l.contains("retrying")),
        "{}",
        out.stdout
    );
    assert_eq!(
        delivery_row(&env, event, "cd").await,
        ("pending".into(), 2, 2 + BUDGET, true)
    );
    assert_eq!(delivery_row(&env, event, "ci").await.0, "delivered");

    let out = hookgate(
        &config,
        &["events", "redeliver", &event.to_string(), "--json"],
    )
    .await;
    assert!(out.ok, "{out:?}");
    let status: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        states(&status),
        [pair("cd", "retrying"), pair("ci", "retrying")]
    );

    for (id, message) in [
        ("not-a-uuid", "is not an event id"),
        (&Uuid::new_v4().to_string(), "no event"),
    ] {
        let out = hookgate(&config, &["events", "redeliver", id]).await;
        assert!(!out.ok, "{out:?}");
        assert!(out.stderr.contains(message), "{out:?}");
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{out:?}");
    }
}

/// The migration opens `delivered -> pending` and nothing else: the other impossible moves are
/// still refused by the database, whatever code tries them.
#[tokio::test]
async fn the_database_still_refuses_every_other_impossible_transition() {
    let env = TestEnv::new().await;
    let _gw = seeded_gateway(&env).await;
    let event = event_with(
        &env,
        "github",
        &[("ci", "delivered", 1), ("cd", "pending", 0)],
    )
    .await;
    let update = |sql: &'static str| {
        let db = env.db.clone();
        async move { sqlx::query(sql).bind(event).execute(&db).await }
    };
    let refused = |result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>| {
        let error = result.expect_err("the transition was allowed").to_string();
        assert!(error.contains("is not allowed"), "{error}");
    };
    refused(
        update("UPDATE deliveries SET state = 'dead' WHERE event_id = $1 AND destination = 'ci'")
            .await,
    );
    update("UPDATE deliveries SET state = 'pending' WHERE event_id = $1 AND destination = 'cd'")
        .await
        .expect("pending -> pending is no transition");
    update("UPDATE deliveries SET state = 'delivered' WHERE event_id = $1 AND destination = 'cd'")
        .await
        .unwrap();
    update("UPDATE events SET status = 'delivered' WHERE id = $1")
        .await
        .unwrap();
    refused(update("UPDATE events SET status = 'dead_lettered' WHERE id = $1").await);
    update("UPDATE events SET status = 'pending' WHERE id = $1")
        .await
        .expect("delivered -> pending is a redelivery");
    refused(
        update(
            "UPDATE deliveries SET state = 'pending' WHERE event_id = $1 AND destination = 'ci'",
        )
        .await,
    );
    update(
        "UPDATE deliveries SET state = 'pending', reason = 'redelivered'
         WHERE event_id = $1 AND destination = 'ci'",
    )
    .await
    .expect("delivered -> pending is a redelivery");
}

#[tokio::test]
async fn a_bulk_redelivery_by_filter_resends_every_matching_event_and_counts_them_exactly() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let destinations = http_destination("billing", &sink, "4s");
    let config = delivery::config("github", &fast_worker(), 3, &destinations) + &admin_tokens();
    let gw = env.start(&config).await;
    let mut events = Vec::new();
    for n in 0..3 {
        events.push(delivery::send(&gw, "github", &format!("d-{n}"), b"{}").await);
    }
    sink.wait_for(3, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 3)
        .await;
    let start = |body: Value| {
        gw.admin_request(Method::POST, "/v1/events/redeliver", ONCALL)
            .json(&body)
            .send()
    };
    Reply::from(start(json!({})).await.unwrap())
        .await
        .assert_problem(400, "bad-filter");

    let reply = Reply::from(
        start(json!({"source": "github", "status": "delivered", "since": "1h"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    assert_eq!(reply.json["kind"], "redeliver");
    assert_eq!(reply.json["matched"], 3);
    let location = reply.header("location").unwrap().to_string();
    let started = std::time::Instant::now();
    let done = loop {
        let polled = gw.admin_get(&location, VIEWER).await;
        if polled.status == 303 {
            break gw
                .admin_get(polled.header("location").unwrap(), VIEWER)
                .await;
        }
        assert!(started.elapsed() < WAIT, "{polled:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.json["state"], "succeeded", "{done:?}");
    assert_eq!(
        (done.json["replayed"].clone(), done.json["failed"].clone()),
        (json!(3), json!(0))
    );

    let received = sink.wait_for(6, WAIT).await;
    for event in &events {
        let id = format!("{event}_billing");
        let arrivals = received
            .iter()
            .filter(|r| r.header("webhook-id") == id)
            .count();
        assert_eq!(arrivals, 2, "{id} delivered once more");
    }
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 3)
        .await;
}

/// An event goes whole or not at all: one with a destination no longer configured is skipped
/// and counted as failed, one still pending is counted and left as it is.
#[tokio::test]
async fn a_bulk_redelivery_skips_and_counts_events_it_cannot_deliver() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let whole = event_with(
        &env,
        "github",
        &[("cd", "delivered", 1), ("ci", "delivered", 1)],
    )
    .await;
    let stuck = event_with(
        &env,
        "github",
        &[("ci", "delivered", 1), ("gone", "dead", 3)],
    )
    .await;
    let waiting = event_with(&env, "github", &[("ci", "pending", 0)]).await;
    let reply = Reply::from(
        gw.admin_request(Method::POST, "/v1/events/redeliver", ONCALL)
            .json(&json!({"source": "github"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let location = reply.header("location").unwrap().to_string();
    let started = std::time::Instant::now();
    let done = loop {
        let polled = gw.admin_get(&location, VIEWER).await;
        if polled.json["state"] != "running" {
            break polled;
        }
        assert!(started.elapsed() < WAIT, "{polled:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        [
            &done.json["state"],
            &done.json["matched"],
            &done.json["replayed"],
            &done.json["failed"]
        ],
        [&json!("succeeded"), &json!(3), &json!(2), &json!(1)],
        "{done:?}"
    );
    assert_eq!(delivery_row(&env, whole, "cd").await.0, "pending");
    assert_eq!(delivery_row(&env, whole, "ci").await.0, "pending");
    assert_eq!(delivery_row(&env, stuck, "ci").await.0, "delivered");
    assert_eq!(event_status(&env, stuck).await, "dead_lettered");
    assert_eq!(
        delivery_row(&env, waiting, "ci").await,
        ("pending".into(), 0, 0, true)
    );
    assert_eq!(
        env.stream_len("github").await,
        1,
        "only the revived event is enqueued"
    );
}
