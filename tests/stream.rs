//! The live status stream: what SSE clients see, resuming with Last-Event-ID, and slow
//! readers being dropped.

mod common;

use common::admin::*;
use common::sink::{Answer, Sink};
use common::sse::SseClient;
use common::tokens::{ONCALL, VIEWER};
use common::{TestEnv, sign};
use hookgate::live::{Ended, Filter, Hub, Limits};
use hookgate::store::Store;
use hookgate::store::transitions::{Kind, Position};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// `(kind, destination)` of the next `n` events of `client`, checking that their ids only
/// grow.
async fn kinds(client: &mut SseClient, n: usize) -> Vec<(String, Value, Value)> {
    let mut seen = Vec::new();
    let mut last: Option<Position> = None;
    for _ in 0..n {
        let event = client.event().await;
        let position: Position = event.id.parse().unwrap();
        assert!(
            last.is_none_or(|l| l < position),
            "{last:?} then {position:?}"
        );
        last = Some(position);
        assert_eq!(event.data["id"], event.id.as_str());
        assert_eq!(event.data["kind"], event.event.as_str());
        seen.push((event.event, event.data["destination"].clone(), event.data));
    }
    seen
}

#[tokio::test]
async fn a_client_sees_an_event_fail_die_be_replayed_and_be_delivered() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.script(&[Answer::status(500), Answer::status(500)]);
    let gw = env.start(&delivering_to(&sink, 2, "10ms")).await;
    let mut all = SseClient::open(&gw, "/v1/stream?source=github", VIEWER, None).await;
    let id = receive(&gw, "d-1", br#"{"n":1}"#).await;

    // received, the first attempt failed, the second dead-lettered the delivery and the event.
    let seen = kinds(&mut all, 4).await;
    let summary: Vec<(&str, &Value)> = seen.iter().map(|(k, d, _)| (k.as_str(), d)).collect();
    let billing = Value::from("billing");
    assert_eq!(
        summary,
        [
            ("received", &Value::Null),
            ("attempt_failed", &billing),
            ("dead_lettered", &billing),
            ("dead_lettered", &Value::Null),
        ]
    );
    let failed = &seen[1].2;
    assert_eq!(failed["event_id"], id.to_string());
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["status_code"], 500);
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert!(failed["next_attempt_at"].is_string(), "{failed}");
    assert!(seen[2].2["next_attempt_at"].is_null());

    let status = gw.admin_get(&format!("/v1/events/{id}"), VIEWER).await;
    let dead_letter = uuid(&status.json["dead_letters"][0]["id"]);
    let replay = format!("/v1/dead-letters/{dead_letter}/replay");
    let reply = send(gw.admin_request(Method::POST, &replay, ONCALL)).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // Replayed, then delivered, each for the delivery and then its event (in one transaction,
    // the delivery's row comes first).
    let mut rest: Vec<(String, Value)> = kinds(&mut all, 4)
        .await
        .into_iter()
        .map(|(k, d, _)| (k, d))
        .collect();
    let delivered = rest.split_off(2);
    for pair in [&rest, &delivered] {
        assert_eq!(pair[0].1, billing, "{pair:?}");
        assert_eq!(pair[1].1, Value::Null, "{pair:?}");
    }
    assert_eq!([&rest[0].0, &rest[1].0], ["replayed", "replayed"]);
    assert_eq!(
        [&delivered[0].0, &delivered[1].0],
        ["delivered", "delivered"]
    );

    // The event's own stream tells its whole story, from the start.
    let mut one = SseClient::open(&gw, &format!("/v1/events/{id}/stream"), VIEWER, None).await;
    let story: Vec<String> = kinds(&mut one, 8).await.into_iter().map(|s| s.0).collect();
    assert_eq!(
        story,
        [
            "received",
            "attempt_failed",
            "dead_lettered",
            "dead_lettered",
            "replayed",
            "replayed",
            "delivered",
            "delivered"
        ]
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_client_resuming_with_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let path = "/v1/stream?source=github&status=received";
    let mut client = SseClient::open(&gw, path, VIEWER, None).await;
    let first = receive(&gw, "d-1", b"{}").await;
    let event = client.event().await;
    assert_eq!(event.data["event_id"], first.to_string());
    drop(client);

    // While it is away: two of its source, one of another source.
    let second = receive(&gw, "d-2", b"{}").await;
    let body = b"{}";
    let other = gw
        .post("gitlab", &sign::github(SECRET, "d-3", body), body)
        .await;
    assert_eq!(other.status, 200, "{other:?}");
    let third = receive(&gw, "d-4", b"{}").await;

    let mut client = SseClient::open(&gw, path, VIEWER, Some(&event.id)).await;
    let resumed = [client.event().await, client.event().await];
    let ids: Vec<&Value> = resumed.iter().map(|e| &e.data["event_id"]).collect();
    assert_eq!(
        ids,
        [&second.to_string().into(), &third.to_string().into()] as [&Value; 2]
    );
    // Live again after catching up.
    let fourth = receive(&gw, "d-5", b"{}").await;
    assert_eq!(client.event().await.data["event_id"], fourth.to_string());
    gw.stop().await;
}

#[tokio::test]
async fn bad_stream_requests_are_problems() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let reply = gw.admin_get("/v1/stream?status=dead", VIEWER).await;
    assert_problem(&reply, 400, "bad-status", "attempt_failed");
    let request = gw
        .admin_request(Method::GET, "/v1/stream", VIEWER)
        .header("Last-Event-ID", "yesterday");
    assert_problem(&send(request).await, 400, "bad-last-event-id", "yesterday");
    let reply = gw
        .admin_get(&format!("/v1/events/{}/stream", Uuid::new_v4()), VIEWER)
        .await;
    reply.assert_problem(404, "not-found");
    let reply = gw.admin_get("/v1/stream", "not-a-token-at-all").await;
    reply.assert_problem(401, "unauthorized");
    gw.stop().await;
}

/// A subscription whose reader stops reading is dropped once the hub's buffer has moved past
/// it, while another keeps up; memory held for it is the shared buffer only.
#[tokio::test]
async fn a_subscriber_that_falls_a_buffer_behind_is_dropped() {
    let env = TestEnv::new().await;
    let store = Store::connect_lazy(&env.database_url, 4).unwrap();
    store.migrate().await.unwrap();
    let shutdown = CancellationToken::new();
    let limits = Limits {
        buffer: 2,
        ..Limits::default()
    };
    let (hub, task) = Hub::spawn(store, limits, shutdown.clone());
    let now = hub.now().await.unwrap();
    let mut slow = hub.subscribe(Filter::default(), now);
    let mut fast = hub.subscribe(Filter::default(), now);
    for n in 0..5 {
        let id = common::seed::event(
            &env.db,
            "github",
            &format!("e-{n}"),
            "2026-11-23T08:00:00Z",
            "pending",
        )
        .await;
        common::seed::arrival(&env.db, id).await;
        // Bounded, so that a change that never comes fails the test instead of hanging it.
        let next = tokio::time::timeout(Duration::from_secs(10), fast.next()).await;
        let change = next.expect("the change arrives").unwrap().unwrap();
        assert_eq!((change.event_id, change.kind), (id, Kind::Received));
    }
    // Its first read catches up from Postgres; the broadcast it then reads lost batches.
    let mut caught_up = Vec::new();
    let ended = loop {
        match slow.next().await {
            Ok(Some(change)) => caught_up.push(change.event_id),
            Ok(None) => panic!("the stream ended without dropping the reader"),
            Err(ended) => break ended,
        }
    };
    assert!(matches!(ended, Ended::FellBehind), "{ended:?}");
    assert_eq!(caught_up.len(), 5);
    shutdown.cancel();
    task.await.unwrap();
    // The other subscription ends with the hub.
    assert!(fast.next().await.unwrap().is_none());
}

/// `hookgate tail --source github` prints a line per change of that source as it happens.
#[tokio::test]
async fn tail_prints_one_line_per_change_of_its_source() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let config = env.config_file(&seeded_sources());
    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_REDIS_URL")
        .arg("--config")
        .arg(config.path())
        .args(["tail", "--source", "github"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(tail.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, stderr.next_line()).await;
    let ready = ready.unwrap().unwrap().unwrap();
    assert!(ready.contains("following changes"), "{ready}");

    let body = b"{}";
    let other = gw
        .post("gitlab", &sign::github(SECRET, "d-1", body), body)
        .await;
    assert_eq!(other.status, 200, "{other:?}");
    let id = receive(&gw, "d-2", body).await;
    let mut stdout = BufReader::new(tail.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, stdout.next_line()).await;
    let line = line.unwrap().unwrap().unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[1..5],
        ["received", "github", &id.to_string(), "-"],
        "{line}"
    );
    gw.stop().await;
}
