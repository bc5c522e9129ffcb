//! Delivery end to end: real Postgres, Redis, gateway and an HTTP sink run by the test.

mod common;

use base64::Engine as _;
use common::delivery::{
    self, DESTINATION_SECRET, assert_nothing_redelivered, fast_worker, http_destination,
};
use common::sink::{Answer, Sink};
use common::{Running, TestEnv, sign};
use hookgate::app::{Gateway, Roles};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Source `github` with these destinations, on the fast schedule of [`delivery::config`].
fn sources(destinations: &str, max_attempts: u32) -> String {
    delivery::config("github", &fast_worker(), max_attempts, destinations)
}

fn verify_standard_signature(received: &common::sink::Received) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(DESTINATION_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let signed = [
        received.header("webhook-id").as_bytes(),
        b".",
        received.header("webhook-timestamp").as_bytes(),
        b".",
        &received.body,
    ]
    .concat();
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sign::hmac_sha256(&key, &signed))
    );
    assert_eq!(received.header("webhook-signature"), expected);
}

#[tokio::test]
async fn delivered_exactly_once_with_a_verifiable_signature() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let gw = env
        .start(&sources(&http_destination("billing", &sink, "4s"), 3))
        .await;
    let body = br#"{"action":"opened"}"#;
    let id = delivery::send(&gw, "github", "d-1", body).await;

    let received = sink.wait_for(1, WAIT).await;
    let r = &received[0];
    assert_eq!(&r.body[..], body);
    verify_standard_signature(r);
    assert_eq!(r.header("webhook-id"), format!("{id}_billing"));
    assert_eq!(r.header("hookgate-source"), "github");
    assert_eq!(r.header("hookgate-attempt"), "1");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("x-team"), "payments");

    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    assert_nothing_redelivered(&env, "github", &sink, 1).await;
    assert_eq!(env.count("SELECT count(*) FROM delivery_attempts").await, 1);
    assert_eq!(
        env.count("SELECT count(*) FROM event_transitions WHERE from_state = 'pending' AND to_state = 'delivered'").await,
        2,
        "the delivery and the event each record their transition"
    );
    // Stream hygiene: processed entries are deleted, not left to grow the stream.
    assert_eq!(env.stream_len("github").await, 0);
}

#[tokio::test]
async fn failing_twice_then_succeeding_takes_three_attempts_on_the_schedule() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.script(&[Answer::status(500), Answer::status(502)]);
    let gw = env
        .start(&sources(&http_destination("billing", &sink, "1s"), 5))
        .await;
    delivery::send(&gw, "github", "d-retry", b"{}").await;

    let received = sink.wait_for(3, WAIT).await;
    let attempts: Vec<&str> = received
        .iter()
        .map(|r| r.header("hookgate-attempt"))
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the idempotency key is stable: {ids:?}"
    );
    // Backoff 100 ms then 200 ms (jitter 0): the waits are at least that long.
    let first_gap = received[1].at - received[0].at;
    let second_gap = received[2].at - received[1].at;
    assert!(first_gap >= Duration::from_millis(100), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(200), "{second_gap:?}");

    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let recorded: Vec<(i32, Option<i32>)> =
        sqlx::query_as("SELECT attempt, status_code FROM delivery_attempts ORDER BY attempt")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(
        recorded,
        vec![(1, Some(500)), (2, Some(502)), (3, Some(200))]
    );
}

#[tokio::test]
async fn retry_after_from_the_destination_is_honoured() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.script(&[Answer {
        status: 503,
        retry_after: Some(1),
        delay: Duration::ZERO,
    }]);
    let gw = env
        .start(&sources(&http_destination("billing", &sink, "1s"), 5))
        .await;
    delivery::send(&gw, "github", "d-429", b"{}").await;
    let received = sink.wait_for(2, WAIT).await;
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "waited {gap:?}, not the 1 s asked for"
    );
}

#[tokio::test]
async fn a_failing_destination_does_not_repeat_a_healthy_one() {
    let env = TestEnv::new().await;
    let healthy = Sink::start().await;
    let broken = Sink::start().await;
    broken.set_default(Answer::status(500));
    let destinations = format!(
        "{}{}",
        http_destination("healthy", &healthy, "1s"),
        http_destination("broken", &broken, "1s")
    );
    let gw = env.start(&sources(&destinations, 3)).await;
    delivery::send(&gw, "github", "d-two", b"{}").await;

    broken.wait_for(3, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 1)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM events WHERE status = 'dead_lettered'",
        1,
    )
    .await;
    assert_eq!(
        healthy.received().len(),
        1,
        "the healthy destination got the event once"
    );
    let (destination, kind, status, error): (String, String, Option<i32>, Option<String>) =
        sqlx::query_as(
            "SELECT destination, failure_kind, last_status, last_error FROM dead_letters",
        )
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(
        (destination.as_str(), kind.as_str(), status),
        ("broken", "rejected", Some(500))
    );
    assert!(error.unwrap().contains("sink says so"));
}

#[tokio::test]
async fn an_unreachable_destination_is_dead_lettered_as_a_connection_failure() {
    let env = TestEnv::new().await;
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let destinations = format!(
        r#"
        [[sources.destinations]]
        name = "gone"
        url = "http://127.0.0.1:{port}/"
        timeout = "500ms"
        "#
    );
    let gw = env.start(&sources(&destinations, 2)).await;
    delivery::send(&gw, "github", "d-gone", b"{}").await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE failure_kind = 'connection'",
        1,
    )
    .await;
}

#[tokio::test]
async fn a_stream_destination_receives_the_payload() {
    let env = TestEnv::new().await;
    let key = format!("{}:audit", env.prefix);
    let destinations = format!(
        r#"
        [[sources.destinations]]
        name = "audit"
        stream = "{key}"
        "#
    );
    let gw = env.start(&sources(&destinations, 3)).await;
    let id = delivery::send(&gw, "github", "d-stream", br#"{"x":1}"#).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut env.redis.clone())
        .await
        .unwrap();
    assert_eq!(entries.ids.len(), 1);
    let entry = &entries.ids[0];
    assert_eq!(entry.get::<String>("event").unwrap(), id);
    assert_eq!(entry.get::<Vec<u8>>("payload").unwrap(), br#"{"x":1}"#);
    assert_eq!(
        entry.get::<String>("webhook-id").unwrap(),
        format!("{id}_audit")
    );
}

/// Redis loses everything (restart without persistence, flush): the stream, the group and the
/// queued set of this test's prefix are deleted. Events acknowledged before are still delivered,
/// and a worker that was reading recreates its group without a restart.
#[tokio::test]
async fn after_redis_loses_its_data_every_acknowledged_event_is_delivered() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let config = sources(&http_destination("billing", &sink, "4s"), 3);
    let receiver = Running::start_with_roles(env.config(&config), Roles::RECEIVER).await;
    for i in 0..20 {
        delivery::send(&receiver, "github", &format!("before-{i}"), b"{}").await;
    }
    assert_eq!(env.stream_len("github").await, 20);
    forget_redis_keys(&env).await;

    let worker = Gateway::start(env.config(&config), Roles::WORKER)
        .await
        .unwrap();
    sink.wait_for(20, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 20)
        .await;

    // Again while the worker is running and blocked in XREADGROUP: NOGROUP, then recovery.
    forget_redis_keys(&env).await;
    for i in 0..5 {
        delivery::send(&receiver, "github", &format!("after-{i}"), b"{}").await;
    }
    forget_redis_keys(&env).await;
    sink.wait_for(25, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 25)
        .await;
    assert_nothing_redelivered(&env, "github", &sink, 25).await;
    let mut ids: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25, "each event delivered once");
    worker.shutdown_token().cancel();
    worker.wait().await.unwrap();
}

async fn forget_redis_keys(env: &TestEnv) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", env.prefix))
        .query_async(&mut env.redis.clone())
        .await
        .unwrap();
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut env.redis.clone())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn many_events_through_several_workers_are_each_delivered_once() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let config = sources(&http_destination("billing", &sink, "4s"), 3);
    let receiver = Running::start_with_roles(env.config(&config), Roles::RECEIVER).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(
            Gateway::start(env.config(&config), Roles::WORKER)
                .await
                .unwrap(),
        );
    }
    let sends = (0..300).map(|i| {
        let receiver = &receiver;
        async move {
            delivery::send(
                receiver,
                "github",
                &format!("many-{i}"),
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .await
        }
    });
    futures::future::join_all(sends).await;
    sink.wait_for(300, Duration::from_secs(30)).await;
    env.wait_for_count(
        "SELECT count(*) FROM events WHERE status = 'delivered'",
        300,
    )
    .await;
    assert_nothing_redelivered(&env, "github", &sink, 300).await;
    let received = sink.received();
    let mut ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300, "each event delivered once");
    for worker in workers {
        worker.shutdown_token().cancel();
        worker.wait().await.unwrap();
    }
}

/// A sink whose first answer takes 30 s, and the config of source `github` delivering to it
/// as `billing` with this `[worker]` section and per-attempt `timeout`.
async fn stalling_sink(worker: &str, timeout: &str) -> (Sink, String) {
    let sink = Sink::start().await;
    sink.script(&[Answer {
        status: 200,
        retry_after: None,
        delay: Duration::from_secs(30),
    }]);
    let config = delivery::config(
        "github",
        worker,
        3,
        &http_destination("billing", &sink, timeout),
    );
    (sink, config)
}

/// A `hookgate work` process is killed (SIGKILL) while its delivery is in flight. Its stream
/// entry stays pending and the event stays marked queued: another worker reclaims the entry
/// after the visibility timeout, and the scheduler requeues the delivery when its lease ends,
/// whichever comes first delivers it, and the other finds nothing left to do.
#[tokio::test]
async fn a_worker_killed_mid_delivery_is_taken_over_and_nothing_is_lost() {
    let env = TestEnv::new().await;
    let (sink, config) = stalling_sink(
        r#"visibility_timeout = "1500ms"
        schedule_interval = "20ms""#,
        "1s",
    )
    .await;
    let receiver = Running::start_with_roles(env.config(&config), Roles::RECEIVER).await;
    let file = env.config_file(&config);
    let mut doomed = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("--config")
        .arg(file.path())
        .arg("work")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    delivery::send(&receiver, "github", "d-crash", b"{}").await;
    sink.wait_for(1, WAIT).await;
    doomed.kill().unwrap(); // SIGKILL, mid-delivery
    doomed.wait().unwrap();

    let rescuer = Gateway::start(env.config(&config), Roles::WORKER)
        .await
        .unwrap();
    sink.wait_for(2, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM deliveries")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(attempts, 2, "the killed attempt counts against the budget");
    env.wait_for_stream_len("github", 0).await;
    assert_eq!(sink.received().len(), 2, "delivered once more, not twice");
    rescuer.shutdown_token().cancel();
    rescuer.wait().await.unwrap();
}

/// Shutdown with a delivery stuck past the deadline: the process still stops promptly, and
/// the unfinished delivery is handed back (its lease runs out, its entry stays pending), so
/// the next worker delivers it.
#[tokio::test]
async fn shutdown_hands_back_deliveries_that_outlive_the_deadline() {
    let env = TestEnv::new().await;
    let (sink, config) = stalling_sink(
        r#"visibility_timeout = "3s"
        schedule_interval = "20ms"
        shutdown_deadline = "200ms""#,
        "2500ms",
    )
    .await;
    let gw = Running::start(env.config(&config)).await;
    delivery::send(&gw, "github", "d-stuck", b"{}").await;
    sink.wait_for(1, WAIT).await;

    // A blocked read is let finish (1 s at most) so no entry is orphaned, then the 200 ms
    // deadline: well before the stuck delivery's 2.5 s timeout would have ended it.
    let stopping = std::time::Instant::now();
    gw.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_millis(1800),
        "stopped in {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts").await,
        0,
        "nothing recorded: handed back"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status = 'pending'")
            .await,
        1
    );

    let next = Gateway::start(env.config(&config), Roles::WORKER)
        .await
        .unwrap();
    sink.wait_for(2, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    next.shutdown_token().cancel();
    next.wait().await.unwrap();
}

/// The operator's path: a destination that keeps refusing ends in the dead-letter table with
/// its last error; once it is healthy again, `hookgate dlq replay` delivers the event.
#[tokio::test]
async fn a_dead_letter_replayed_after_the_destination_heals_is_delivered() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer::status(500));
    let config = sources(&http_destination("billing", &sink, "1s"), 2);
    let gw = env.start(&config).await;
    let id = delivery::send(&gw, "github", "d-dead", br#"{"n":1}"#).await;
    env.wait_for_count("SELECT count(*) FROM dead_letters", 1)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM events WHERE status = 'dead_lettered'",
        1,
    )
    .await;
    let (dead_letter, last_error): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, last_error FROM dead_letters")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert!(last_error.starts_with("HTTP 500"), "{last_error}");

    sink.set_default(Answer::status(200));
    let file = env.config_file(&config);
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("--config")
        .arg(file.path())
        .args(["dlq", "replay", &dead_letter.to_string()])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );

    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let received = sink.received();
    assert_eq!(received.len(), 3, "two refused attempts, then the replay");
    assert_eq!(received[2].header("webhook-id"), format!("{id}_billing"));
    assert_eq!(received[2].header("hookgate-attempt"), "3");
    let reasons: Vec<(Option<String>, String, String)> =
        sqlx::query_as("SELECT destination, to_state, reason FROM event_transitions ORDER BY id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    let reasons: Vec<(Option<&str>, &str, &str)> = reasons
        .iter()
        .map(|(d, t, r)| (d.as_deref(), t.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (None, "pending", "received"),
            (Some("billing"), "pending", "retry scheduled"),
            (Some("billing"), "dead", "attempts exhausted (2)"),
            (None, "dead_lettered", "a delivery was dead-lettered"),
            (Some("billing"), "pending", "replayed"),
            (None, "pending", "a delivery was replayed"),
            (Some("billing"), "delivered", "delivered"),
            (None, "delivered", "every delivery delivered"),
        ]
    );
}

/// Ingest commits wait for the WAL flush (an acknowledged event survives a crash); the
/// worker's bookkeeping does not (a lost outcome only means a delivery is made again).
/// Triggers of the test's own note the `synchronous_commit` of every session that writes
/// events, deliveries and attempts while the running gateway takes one webhook through.
#[tokio::test]
async fn only_the_workers_pool_commits_without_waiting_for_the_flush() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let gw = env
        .start(&sources(&http_destination("billing", &sink, "1s"), 3))
        .await;
    sqlx::raw_sql(
        "CREATE TABLE commit_modes (tbl text, op text, mode text);
         CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO commit_modes
             VALUES (TG_TABLE_NAME, TG_OP, current_setting('synchronous_commit'));
             RETURN NULL;
         END $$;
         CREATE TRIGGER note_commit_mode AFTER INSERT OR UPDATE ON events
             FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode();
         CREATE TRIGGER note_commit_mode AFTER INSERT OR UPDATE ON deliveries
             FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode();
         CREATE TRIGGER note_commit_mode AFTER INSERT ON delivery_attempts
             FOR EACH STATEMENT EXECUTE FUNCTION note_commit_mode();",
    )
    .execute(&env.db)
    .await
    .unwrap();

    delivery::send(&gw, "github", "d-sync", b"{}").await;
    sink.wait_for(1, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let modes: Vec<(String, String, String)> =
        sqlx::query_as("SELECT DISTINCT tbl, op, mode FROM commit_modes ORDER BY 1, 2, 3")
            .fetch_all(&env.db)
            .await
            .unwrap();
    let modes: Vec<(&str, &str, &str)> = modes
        .iter()
        .map(|(t, o, m)| (t.as_str(), o.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        modes,
        [
            ("deliveries", "INSERT", "on"),  // ingest
            ("deliveries", "UPDATE", "off"), // the worker's claim and outcome
            ("delivery_attempts", "INSERT", "off"),
            ("events", "INSERT", "on"),  // ingest
            ("events", "UPDATE", "off"), // the worker settles the event's status
        ]
    );
}
