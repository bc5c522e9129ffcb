//! Bulk replays and redeliveries as operations of the admin API: selection, progress,
//! cancellation, and hand-over between processes, against real Postgres and Redis.

mod common;

use chrono::Utc;
use common::admin::*;
use common::tokens::{ONCALL, VIEWER};
use common::{TestEnv, seed};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn a_bulk_replay_of_thousands_runs_as_an_operation_and_replays_only_its_selection() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    seed::dead_letters(&env.db, "github", "ci", 3_000).await;
    seed::dead_letters(&env.db, "gitlab", "ci", 250).await;

    // While this lock is held the runner's first batch waits, so the operation is observably
    // running; reading it is not blocked.
    let lock = lock_dead_letters(&env).await;
    let (op, started) = start_replay(&gw, json!({"source": "github"})).await;
    assert_eq!(started.json["matched"], 3_000);
    assert_eq!(started.json["failed"], 0);
    assert_eq!(started.json["error"], Value::Null);
    assert_eq!(started.json["finished_at"], Value::Null);
    assert_eq!(started.json["filter"], json!({"source": "github"}));
    let running = gw.admin_get(&op, VIEWER).await;
    assert_eq!(running.status, 200, "{running:?}");
    assert_eq!(running.retry_after.as_deref(), Some("2"));
    assert_eq!(running.json["state"], "running");
    assert_eq!(running.json["id"], started.json["id"]);
    let early = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_problem(&early, 409, "conflict", "still running");
    lock.rollback().await.unwrap();

    let finished = until_finished(&gw, &op).await;
    assert_eq!(finished.json["state"], "succeeded");
    let result = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_eq!(result.status, 200, "{result:?}");
    let report = &result.json;
    assert_eq!(report["id"], started.json["id"]);
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["matched"], 3_000);
    assert_eq!(report["replayed"], 3_000);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["error"], Value::Null);
    assert!(time(&report["finished_at"]) >= time(&report["created_at"]));
    assert_eq!(report["href"], op);
    // A client that follows the 303 lands on the same report.
    let followed = send(gw.http.get(format!("{}{op}", gw.admin)).bearer_auth(VIEWER)).await;
    assert_eq!((followed.status, &followed.json), (200, report));

    // Every replayed delivery is pending again with a fresh budget and back on its stream;
    // the other source is untouched.
    for (sql, expected) in [
        (
            "SELECT count(*) FROM dead_letters WHERE source = 'github' AND replayed_at IS NOT NULL",
            3_000,
        ),
        (
            "SELECT count(*) FROM events WHERE source = 'github' AND status = 'pending'",
            3_000,
        ),
        (
            "SELECT count(*) FROM dead_letters WHERE source = 'gitlab' AND replayed_at IS NULL",
            250,
        ),
        (
            "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE e.source = 'gitlab' AND d.state = 'dead'",
            250,
        ),
        (
            "SELECT count(*) FROM events WHERE source = 'gitlab' AND status = 'dead_lettered'",
            250,
        ),
    ] {
        assert_eq!(env.count(sql).await, expected, "{sql}");
    }
    assert_eq!(
        with_fresh_budget(&env, "github").await,
        3_000,
        "each replayed delivery may make BUDGET more attempts"
    );
    assert_eq!(env.stream_len("github").await, 3_000);
    assert_eq!(env.stream_len("gitlab").await, 0);
    assert_eq!(listed(&gw, "/v1/dead-letters?source=github").await, NONE);
    assert_eq!(
        walk(&gw, "/v1/dead-letters?source=gitlab&limit=500", 500)
            .await
            .0
            .len(),
        250
    );

    // A finished operation cannot be cancelled, and the same selection now matches nothing.
    let cancel = send(gw.admin_request(Method::DELETE, &op, ONCALL)).await;
    assert_problem(&cancel, 409, "conflict", "already succeeded");
    let (again, started) = start_replay(&gw, json!({"source": "github"})).await;
    assert_eq!(started.json["matched"], 0);
    let finished = until_finished(&gw, &again).await;
    assert_eq!(
        (&finished.json["state"], &finished.json["replayed"]),
        (&json!("succeeded"), &json!(0))
    );
    assert_eq!(
        env.stream_len("github").await,
        3_000,
        "nothing replayed twice"
    );
}

/// `matched` is what the filter selected when the operation started: dead letters that arrive
/// while it runs (the destination may still be failing) are not chased.
#[tokio::test]
async fn a_bulk_replay_replays_what_matched_when_it_started_not_dead_letters_arriving_meanwhile() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    seed::dead_letters(&env.db, "github", "ci", 1_200).await;

    // The runner waits on the lock while newer dead letters are written under it.
    let mut lock = lock_dead_letters(&env).await;
    let (op, started) = start_replay(&gw, json!({"source": "github"})).await;
    assert_eq!(started.json["matched"], 1_200);
    let mut arrived = Vec::new();
    for _ in 0..5 {
        let now = rfc3339(Utc::now());
        arrived.push(seed::dead_letter(&mut *lock, "github", "ci", &now).await);
    }
    lock.commit().await.unwrap();

    until_finished(&gw, &op).await;
    let result = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_eq!(result.json["state"], "succeeded", "{result:?}");
    let still_open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE id = ANY($1) AND replayed_at IS NULL",
    )
    .bind(&arrived)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(
        (
            &result.json["matched"],
            &result.json["replayed"],
            still_open
        ),
        (&json!(1_200), &json!(1_200), 5),
        "replayed what matched at the start, and only that"
    );
}

#[tokio::test]
async fn a_cancelled_bulk_replay_stops_and_its_result_counts_what_it_replayed() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    seed::dead_letters(&env.db, "github", "ci", 20_000).await;
    seed::dead_letters(&env.db, "gitlab", "ci", 10).await;

    let (op, started) = start_replay(&gw, json!({"source": "github"})).await;
    assert_eq!(started.json["matched"], 20_000);
    let cancelled = cancel_mid_way(&env, &gw, &op).await;

    let shown = gw.admin_get(&op, VIEWER).await;
    assert_eq!(shown.status, 303, "{shown:?}");
    assert_eq!(
        shown.header("location"),
        Some(format!("{op}/result").as_str())
    );
    let result = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_eq!(result.status, 200, "{result:?}");
    assert_eq!(result.json["state"], "cancelled");
    assert_eq!(result.json["matched"], 20_000);
    assert!(result.json["replayed"].as_i64().unwrap() < 20_000);
    // Cancelling again is harmless: the same cancelled operation, its end not moved.
    let again = send(gw.admin_request(Method::DELETE, &op, ONCALL)).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json["state"], "cancelled");
    assert_eq!(again.json["finished_at"], cancelled.json["finished_at"]);

    // The runner takes operations one at a time: once a later one has finished, it is done
    // with the cancelled one.
    let (later, _) = start_replay(&gw, json!({"source": "gitlab"})).await;
    let finished = until_finished(&gw, &later).await;
    assert_eq!(finished.json["replayed"], 10);
    let result = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_eq!(result.json["state"], "cancelled", "{result:?}");
    let reported = result.json["replayed"].as_i64().unwrap();
    let replayed = env
        .count(
            "SELECT count(*) FROM dead_letters WHERE source = 'github' AND replayed_at IS NOT NULL",
        )
        .await;
    assert!(replayed < 20_000, "the cancel stopped the replay");
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE state = 'dead'")
            .await,
        20_000 - replayed,
        "what was not replayed stays dead"
    );
    assert_eq!(
        listed(&gw, "/v1/dead-letters?source=github&limit=1")
            .await
            .len(),
        1
    );
    assert_eq!(
        reported, replayed,
        "the result of a cancelled operation reports every dead letter it replayed"
    );
}

/// The process running a bulk replay is killed (SIGKILL) mid-batch. The operation stays
/// `running` with what it committed; once its lease runs out the leader resumes from the
/// last committed batch, and every dead letter is replayed exactly once.
#[tokio::test]
async fn a_bulk_replay_survives_the_death_of_its_process_and_is_resumed_elsewhere() {
    let env = TestEnv::new().await;
    killed_mid_batch_and_resumed(&env, Bulk::Replay, 5_000).await;
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL")
            .await,
        5_000
    );
}

/// Cancelled mid-way, a bulk redelivery stops: no delivery is revived after the cancel, and
/// its result counts exactly the events it redelivered.
#[tokio::test]
async fn a_cancelled_bulk_redelivery_stops_and_revives_nothing_after_the_cancel() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    Bulk::Redeliver.seed(&env, "github", 20_000).await;
    Bulk::Redeliver.seed(&env, "gitlab", 10).await;

    let (op, started) = start_bulk(&gw.admin, Bulk::Redeliver, json!({"source": "github"})).await;
    assert_eq!(started.json["matched"], 20_000);
    let cancelled = cancel_mid_way(&env, &gw, &op).await;
    let at_cancel = cancelled.json["replayed"].as_i64().unwrap();
    assert_eq!(
        Bulk::Redeliver.done(&env, "github").await,
        at_cancel,
        "the cancel waited for the batch in flight and counts it"
    );

    // The runner takes operations one at a time: once a later one has finished, it is done
    // with the cancelled one.
    let (later, _) = start_bulk(&gw.admin, Bulk::Redeliver, json!({"source": "gitlab"})).await;
    assert_eq!(until_finished(&gw, &later).await.json["replayed"], 10);
    let result = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_eq!(result.json["state"], "cancelled", "{result:?}");
    assert_eq!(result.json["replayed"], at_cancel, "{result:?}");
    assert_eq!(
        Bulk::Redeliver.done(&env, "github").await,
        at_cancel,
        "no delivery was revived after the cancel"
    );
    assert_eq!(
        env.count(
            "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE e.source = 'github' AND d.state = 'delivered'"
        )
        .await,
        20_000 - at_cancel,
        "what was not redelivered stays delivered"
    );
    assert_eq!(
        env.stream_len("github").await as i64,
        at_cancel,
        "only what was redelivered went back on the stream"
    );
}

/// The process running a bulk redelivery is killed (SIGKILL) mid-batch; once its lease runs
/// out the leader resumes from the last committed batch, and every event is redelivered
/// exactly once.
#[tokio::test]
async fn a_bulk_redelivery_survives_the_death_of_its_process_and_is_resumed_elsewhere() {
    let env = TestEnv::new().await;
    killed_mid_batch_and_resumed(&env, Bulk::Redeliver, 5_000).await;
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status = 'pending'")
            .await,
        5_000
    );
}

/// A process shut down mid-operation finishes its batch, then gives up the lease at once:
/// the leader resumes without waiting for it to run out.
#[tokio::test]
async fn a_bulk_replay_is_handed_over_at_once_when_its_process_shuts_down() {
    let env = TestEnv::new().await;
    let leaving = seeded_gateway(&env).await;
    seed::dead_letters(&env.db, "github", "ci", 1_200).await;
    let lock = lock_dead_letters(&env).await;
    let (op, started) = start_replay(&leaving, json!({"source": "github"})).await;
    let id = uuid(&started.json["id"]);
    // The runner is inside its first batch, waiting on the lock, when shutdown comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = tokio::spawn(leaving.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    lock.rollback().await.unwrap();
    stopped.await.unwrap();

    let (state, replayed, leased): (String, i64, bool) = sqlx::query_as(
        "SELECT state, replayed, lease_until IS NOT NULL FROM operations WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!((state.as_str(), replayed, leased), ("running", 500, false));

    let successor = leading_gateway(&env).await;
    let finished = until_finished(&successor, &op).await;
    assert_eq!(finished.json["replayed"], 1_200);
    assert_eq!(Bulk::Replay.done(&env, "github").await, 1_200);
    successor.stop().await;
}

/// A dead letter another transaction holds while the operation passes is not left behind:
/// once that transaction ends without replaying it, the operation walks again and takes it.
#[tokio::test]
async fn a_bulk_replay_comes_back_for_dead_letters_held_elsewhere_while_it_passed() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    seed::dead_letters(&env.db, "github", "ci", 1_000).await;
    let held: Uuid = sqlx::query_scalar("SELECT id FROM dead_letters ORDER BY created_at LIMIT 1")
        .fetch_one(&env.db)
        .await
        .unwrap();
    // Another operator's transaction holds one dead letter, then rolls back.
    let mut other = env.db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM dead_letters WHERE id = $1 FOR UPDATE")
        .bind(held)
        .execute(&mut *other)
        .await
        .unwrap();
    let (op, _) = start_replay(&gw, json!({"source": "github"})).await;
    poll(&gw, &op, |r| r.json["replayed"] == 999).await;
    other.rollback().await.unwrap();

    let finished = until_finished(&gw, &op).await;
    assert_eq!(finished.json["state"], "succeeded");
    assert_eq!(finished.json["replayed"], 1_000);
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
            .await,
        0
    );
}
