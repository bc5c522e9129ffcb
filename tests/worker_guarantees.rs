//! What the README promises about delivery, each shown against real Postgres, Redis and the
//! `hookgate` binary: leases, the audit trigger, failure kinds, Retry-After, SIGTERM, metrics.

mod common;

use common::delivery::{self, assert_nothing_redelivered, fast_worker, http_destination, send};
use common::sink::{Answer, Sink};
use common::{Running, TestEnv, seed};
use hookgate::app::Roles;
use hookgate::store::Store;
use hookgate::store::deliveries::{Attempt, ClaimedEvent, FailureKind, Next};
use hookgate::store::outcomes::Outcome;
use hookgate::store::rules::Rules;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The test's schema with hookgate's tables, and a store on it.
async fn migrated_store(env: &TestEnv) -> Store {
    let store = Store::connect_lazy(&env.database_url, 2).unwrap();
    store.migrate().await.unwrap();
    store
}

/// What a worker reports for the one delivery it claimed.
fn outcome(
    claim: &ClaimedEvent,
    status: u16,
    failure: Option<(FailureKind, String)>,
    next: Next,
) -> Attempt {
    let claimed = &claim.deliveries[0];
    Attempt {
        destination: claimed.destination.clone(),
        attempt: claimed.attempt,
        duration: Duration::from_millis(5),
        status_code: Some(status),
        failure,
        next,
    }
}

#[tokio::test]
async fn a_worker_whose_lease_ran_out_cannot_overwrite_the_new_owners_outcome() {
    let env = TestEnv::new().await;
    let store = migrated_store(&env).await;
    let event = seed::pending_delivery(&env.db, "github", "billing").await;
    let lease = Duration::from_secs(60);
    let stale = store
        .claim(&[event], lease, &[])
        .await
        .unwrap()
        .events
        .pop()
        .expect("due");
    assert!(
        store
            .claim(&[event], lease, &[])
            .await
            .unwrap()
            .events
            .is_empty(),
        "a leased delivery is not claimed twice"
    );
    sqlx::query("UPDATE deliveries SET lease_until = now() - interval '1 second'")
        .execute(&env.db)
        .await
        .unwrap();
    let owner = store
        .claim(&[event], lease, &[])
        .await
        .unwrap()
        .events
        .pop()
        .expect("the lease ran out: claimable again");
    assert_ne!(owner.lease_token, stale.lease_token);
    assert_eq!(owner.deliveries[0].attempt, 2);

    // The slow worker comes back with a refusal that would dead-letter the delivery.
    let refused = Some((FailureKind::Rejected, "HTTP 500".to_string()));
    let stale_report = outcome(&stale, 500, refused, Next::DeadLetter);
    let stale_report = [stale_report];
    store
        .record(
            &[Outcome {
                event: &stale,
                attempts: &stale_report,
            }],
            &Rules::default(),
        )
        .await
        .unwrap();
    let (state, token): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT state, lease_token FROM deliveries")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), token),
        ("pending", Some(owner.lease_token))
    );
    assert_eq!(env.count("SELECT count(*) FROM delivery_attempts").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM dead_letters").await, 0);

    let owner_report = outcome(&owner, 200, None, Next::Delivered);
    let owner_report = [owner_report];
    store
        .record(
            &[Outcome {
                event: &owner,
                attempts: &owner_report,
            }],
            &Rules::default(),
        )
        .await
        .unwrap();
    let (state, token): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT state, lease_token FROM deliveries")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!((state.as_str(), token), ("delivered", None));
    let recorded: Vec<(i32, Option<i32>)> =
        sqlx::query_as("SELECT attempt, status_code FROM delivery_attempts")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(recorded, [(2, Some(200))]);
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status = 'delivered'")
            .await,
        1
    );
}

/// Only a redelivery (reason `redelivered`) may move a delivered delivery back to pending, and a
/// delivered event only back to pending, which its revived delivery then decides.
#[tokio::test]
async fn the_audit_trigger_refuses_to_move_a_delivered_delivery_or_event_back() {
    let env = TestEnv::new().await;
    migrated_store(&env).await;
    seed::pending_delivery(&env.db, "github", "billing").await;
    for allowed in [
        "UPDATE deliveries SET state = 'delivered', reason = 'delivered'",
        "UPDATE events SET status = 'delivered'",
    ] {
        sqlx::query(allowed).execute(&env.db).await.unwrap();
    }

    for (impossible, refusal) in [
        (
            "UPDATE deliveries SET state = 'pending', reason = 'replayed'",
            "delivery transition delivered -> pending is not allowed",
        ),
        (
            "UPDATE deliveries SET state = 'dead', reason = 'attempts exhausted (3)'",
            "delivery transition delivered -> dead is not allowed",
        ),
        (
            "UPDATE events SET status = 'dead_lettered'",
            "event transition delivered -> dead_lettered is not allowed",
        ),
    ] {
        let error = sqlx::query(impossible)
            .execute(&env.db)
            .await
            .expect_err(impossible);
        assert!(error.to_string().contains(refusal), "{impossible}: {error}");
    }

    let audited: Vec<(Option<String>, Option<String>, String)> = sqlx::query_as(
        "SELECT destination, from_state, to_state FROM event_transitions ORDER BY id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    let delivered = |destination: Option<&str>| {
        (
            destination.map(str::to_string),
            Some("pending".to_string()),
            "delivered".to_string(),
        )
    };
    // A seeded event has no arrival row: the receiver's insert writes those, not a trigger.
    assert_eq!(audited, [delivered(Some("billing")), delivered(None)]);
}

#[tokio::test]
async fn a_destination_slower_than_its_timeout_is_dead_lettered_as_a_timeout() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer {
        status: 200,
        retry_after: None,
        delay: Duration::from_secs(5),
    });
    let destination = http_destination("slow", &sink, "200ms");
    let gw = env
        .start(&delivery::config("github", &fast_worker(), 1, &destination))
        .await;
    send(&gw, "github", "d-slow", b"{}").await;

    env.wait_for_count("SELECT count(*) FROM dead_letters", 1)
        .await;
    let (kind, status): (String, Option<i32>) =
        sqlx::query_as("SELECT failure_kind, last_status FROM dead_letters")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!((kind.as_str(), status), ("timeout", None));
    assert_eq!(
        sink.received().len(),
        1,
        "the request reached the destination"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_max_delay_waits_only_max_delay() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.script(&[Answer {
        status: 429,
        retry_after: Some(3600),
        delay: Duration::ZERO,
    }]);
    let destination = http_destination("billing", &sink, "1s");
    // max_delay is 1 s; without Retry-After the first retry would wait 100 ms.
    let gw = env
        .start(&delivery::config("github", &fast_worker(), 3, &destination))
        .await;
    send(&gw, "github", "d-429", b"{}").await;

    sink.wait_for(2, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    // The outcome of attempt 1 and its retry time are written at the same `now()`.
    let (status, waited): (Option<i32>, f64) = sqlx::query_as(
        "SELECT a.status_code, extract(epoch FROM d.next_attempt_at - a.at)::float8
         FROM deliveries d JOIN delivery_attempts a USING (event_id, destination)
         WHERE a.attempt = 1",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!((status, waited), (Some(429), 1.0));
}

/// `hookgate work` gets SIGTERM while three deliveries wait for a destination that answers
/// after a few seconds, well inside `shutdown_deadline`: it finishes them, records them as
/// delivered, acknowledges their entries and exits 0.
#[tokio::test]
async fn sigterm_lets_in_flight_deliveries_finish_and_exits_0() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer {
        status: 200,
        retry_after: None,
        delay: Duration::from_secs(4),
    });
    let config = delivery::config(
        "github",
        r#"visibility_timeout = "30s"
        schedule_interval = "20ms"
        shutdown_deadline = "20s""#,
        3,
        &http_destination("billing", &sink, "10s"),
    );
    let receiver = Running::start_with_roles(env.config(&config), Roles::RECEIVER).await;
    let file = env.config_file(&config);
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("--config")
        .arg(file.path())
        .arg("work")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for n in 0..3 {
        send(&receiver, "github", &format!("d-term-{n}"), b"{}").await;
    }
    sink.wait_for(3, WAIT).await;

    let pid = worker.id().unwrap().to_string();
    let term = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts").await,
        0,
        "the deliveries were still in flight at the SIGTERM"
    );
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker exits within the shutdown deadline")
        .unwrap();
    assert_eq!(exit.code(), Some(0));

    let recorded: Vec<(i32, Option<i32>)> =
        sqlx::query_as("SELECT attempt, status_code FROM delivery_attempts")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(recorded, [(1, Some(200)); 3]);
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status = 'delivered'")
            .await,
        3
    );
    assert_eq!(env.stream_pending("github").await, 0);
    assert_eq!(env.stream_len("github").await, 0);
}

/// Counts per destination of one event, on a source no other test uses (the recorder is
/// shared by the whole test process): `ok` delivers at once, `flaky` refuses once, `broken`
/// refuses both allowed attempts. A consumer that read an entry and went silent leaves it to
/// be reclaimed.
#[tokio::test]
async fn delivery_and_scheduler_metrics_count_each_outcome_per_destination() {
    const SOURCE: &str = "metered";
    let env = TestEnv::new().await;
    let (ok, flaky, broken) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    flaky.script(&[Answer::status(500)]);
    broken.set_default(Answer::status(500));
    let destinations = [("ok", &ok), ("flaky", &flaky), ("broken", &broken)]
        .map(|(name, sink)| http_destination(name, sink, "1s"))
        .concat();

    let key = env.stream_key(SOURCE);
    let mut redis = env.redis.clone();
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg(hookgate::queue::GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("event")
        .arg(uuid::Uuid::new_v4().to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(hookgate::queue::GROUP)
        .arg("silent")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&key)
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();

    let gw = env
        .start(&delivery::config(SOURCE, &fast_worker(), 2, &destinations))
        .await;
    send(&gw, SOURCE, "d-metered", b"{}").await;
    env.wait_for_count(
        "SELECT count(*) FROM events WHERE status = 'dead_lettered'",
        1,
    )
    .await;
    // Also long enough for the silent consumer's entry to be reclaimed and finished.
    assert_nothing_redelivered(&env, SOURCE, &ok, 1).await;

    let series = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        gw.samples("hookgate_deliveries_total", SOURCE).await,
        series(&[
            ("destination=broken,outcome=dead_lettered", 1.0),
            ("destination=broken,outcome=retry", 1.0),
            ("destination=flaky,outcome=delivered", 1.0),
            ("destination=flaky,outcome=retry", 1.0),
            ("destination=ok,outcome=delivered", 1.0),
        ])
    );
    assert_eq!(
        gw.samples("hookgate_delivery_duration_seconds_count", SOURCE)
            .await,
        series(&[
            ("destination=broken", 2.0),
            ("destination=flaky", 2.0),
            ("destination=ok", 1.0),
        ])
    );
    assert_eq!(
        gw.samples("hookgate_retries_total", SOURCE).await,
        series(&[("destination=broken", 1.0), ("destination=flaky", 1.0)])
    );
    assert_eq!(
        gw.samples("hookgate_dead_letters_total", SOURCE).await,
        series(&[("destination=broken", 1.0)])
    );
    // The event's one retry round was put back on the stream by the scheduler.
    assert_eq!(
        gw.samples("hookgate_requeued_total", SOURCE).await,
        series(&[("", 1.0)])
    );
    assert_eq!(
        gw.samples("hookgate_reclaimed_total", SOURCE).await,
        series(&[("", 1.0)])
    );
}

/// Both pools run without JIT (compiling took ~35 ms per claim once a million deliveries
/// made the planner's estimates large) and keep the schema of their URL. (That only the
/// worker's commits are relaxed is `tests/worker.rs`'s to show, on a running gateway.)
#[tokio::test]
async fn the_pools_run_without_jit_in_their_schema() {
    let env = TestEnv::new().await;
    let setting = async |store: &Store, name: &str| -> String {
        let sql = format!("SELECT current_setting('{name}')");
        (sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()))
            .await
            .unwrap()
    };
    let events = Store::connect_lazy(&env.database_url, 1).unwrap();
    let worker = Store::connect_lazy_relaxed(&env.database_url, 1).unwrap();
    for store in [&events, &worker] {
        assert_eq!(setting(store, "jit").await, "off");
        assert_eq!(setting(store, "search_path").await, env.schema);
    }
}
