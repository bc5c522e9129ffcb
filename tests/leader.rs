//! One leader for the background work: exactly one worker process leads (receivers never do),
//! only it runs the duties, a killed leader is replaced within seconds and its duties (here a
//! retry that only the scheduler can put back on the stream) are carried on by the new one,
//! and a leader whose lock's session ends steps down.

mod common;

use common::delivery::{self, DESTINATION_SECRET, SECRET};
use common::procs::{Hookgate, Role};
use common::sink::{Answer, Sink};
use common::{Running, TestEnv};
use std::time::{Duration, Instant};

/// Standbys try every second; the rest is for a loaded machine.
const HANDOVER: Duration = Duration::from_secs(15);
const WAIT: Duration = Duration::from_secs(20);

/// Source `github` whose one destination is `sink`; a failed attempt is retried after 3 s,
/// time enough to kill the leader first.
fn sources(sink: &Sink) -> String {
    format!(
        r#"
        [worker]
        visibility_timeout = "5s"
        schedule_interval = "50ms"

        [retry]
        max_attempts = 5
        initial_delay = "3s"
        jitter = 0.0

        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "ci"
          url = "{}"
          timeout = "2s"
          secret = "{DESTINATION_SECRET}"
        "#,
        sink.url
    )
}

async fn leads(process: &Hookgate) -> bool {
    process
        .metrics()
        .await
        .lines()
        .any(|l| l == "hookgate_leader 1")
}

/// The index of the one process of `processes` that leads, once exactly one does in three
/// looks in a row.
async fn the_leader(processes: &[&Hookgate]) -> usize {
    let started = Instant::now();
    let mut agreed = 0;
    loop {
        let mut leaders = Vec::new();
        for (i, p) in processes.iter().enumerate() {
            if leads(p).await {
                leaders.push(i);
            }
        }
        agreed = if leaders.len() == 1 { agreed + 1 } else { 0 };
        if agreed == 3 {
            return leaders[0];
        }
        assert!(
            started.elapsed() < HANDOVER,
            "leaders: {leaders:?} of {} processes",
            processes.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_worker_process_leads_and_a_killed_leader_is_replaced() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.script(&[Answer::status(500)]);
    let dir = tempfile::tempdir().unwrap();
    let text = env.config_text(&sources(&sink));
    let receiver = Hookgate::start(dir.path(), "receiver", Role::Receive, &text).await;
    let mut workers = [
        Hookgate::start(dir.path(), "worker-a", Role::Work, &text).await,
        Hookgate::start(dir.path(), "worker-b", Role::Work, &text).await,
        Hookgate::start(dir.path(), "worker-c", Role::Work, &text).await,
    ];
    let leader = the_leader(&workers.iter().collect::<Vec<_>>()).await;
    assert!(
        !leads(&receiver).await,
        "a receiver-only process never leads"
    );
    // Only the leader reports the depth gauges.
    for (i, worker) in workers.iter().enumerate() {
        let gauges = worker.metrics().await.contains("hookgate_stream_pending{");
        assert_eq!(gauges, i == leader, "{}: gauges {gauges}", worker.name);
    }

    let body = br#"{"zen":"leader"}"#;
    let headers = common::sign::github(SECRET, "d-leader", body);
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/github", receiver.base))
        .body(body.to_vec());
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    sink.wait_for(1, WAIT).await;
    // The failed attempt is recorded and its entry finished: from now on only the scheduler
    // can put the retry back on the stream.
    env.wait_for_count(
        "SELECT count(*) FROM deliveries
         WHERE state = 'pending' AND attempts = 1 AND lease_token IS NULL",
        1,
    )
    .await;
    env.wait_for_stream_len("github", 0).await;
    let killed = Instant::now();
    workers[leader].kill();

    let survivors: Vec<&Hookgate> = (workers.iter().enumerate())
        .filter(|(i, _)| *i != leader)
        .map(|(_, w)| w)
        .collect();
    the_leader(&survivors).await;
    assert!(killed.elapsed() < HANDOVER, "{:?}", killed.elapsed());
    sink.wait_for(2, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
}

#[tokio::test]
async fn a_leader_whose_lock_session_ends_steps_down_and_one_leads_again() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let first = Running::start(env.config(&sources(&sink))).await;
    // In-process gateways of this binary share one metrics recorder, so the lock itself says
    // who leads here, not `hookgate_leader`.
    let holder = lock_holder(&env, None).await;
    // Postgres ends the session that holds the lock, as a failover or a network cut would.
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(holder)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert!(ended);
    // The leader notices, stands by, and (being the only candidate) leads again on a new
    // session: background work goes on.
    lock_holder(&env, Some(holder)).await;
    delivery::send(&first, "github", "d-after", b"{}").await;
    sink.wait_for(1, WAIT).await;
    first.stop().await;
}

/// The backend holding the leader's lock of the test's schema, once one other than `not`
/// does.
async fn lock_holder(env: &TestEnv, not: Option<i32>) -> i32 {
    let started = Instant::now();
    loop {
        let holder: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_locks
             WHERE locktype = 'advisory' AND classid = x'686b676c'::int
               AND objid = hashtext($1)::oid AND granted",
        )
        .bind(&env.schema)
        .fetch_optional(&env.db)
        .await
        .unwrap();
        if let Some(pid) = holder.filter(|pid| Some(*pid) != not) {
            return pid;
        }
        assert!(
            started.elapsed() < HANDOVER,
            "no leader (other than {not:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Source `github` delivering to `sink` as each of `destinations`.
fn routed(sink: &Sink, destinations: &[&str]) -> String {
    let mut text = format!(
        r#"
        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
        "#
    );
    for name in destinations {
        text += &format!(
            "\n  [[sources.destinations]]\n  name = \"{name}\"\n  url = \"{}\"\n",
            sink.url
        );
    }
    text
}

/// A leader sweeps for deliveries whose route is gone only when a route went since the last
/// leader ran (the sweep reads every pending delivery): here `old` went, and a delivery to it
/// that is not due for an hour, which only the sweep can find, is dead-lettered at once.
#[tokio::test]
async fn a_new_leader_sweeps_the_deliveries_of_a_route_removed_since_the_last_one() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let before = Running::start(env.config(&routed(&sink, &["billing", "old"]))).await;
    env.wait_for_count("SELECT count(*) FROM configured_routes", 2)
        .await;
    before.stop().await;
    let waiting = common::seed::pending_delivery(&env.db, "github", "old").await;
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = now() + interval '1 hour',
             requeue_at = now() + interval '1 hour'
         WHERE event_id = $1",
    )
    .bind(waiting)
    .execute(&env.db)
    .await
    .unwrap();

    let after = Running::start(env.config(&routed(&sink, &["billing"]))).await;
    env.wait_for_count(
        "SELECT count(*) FROM dead_letters WHERE destination = 'old' AND failure_kind = 'pipeline'",
        1,
    )
    .await;
    env.wait_for_count("SELECT count(*) FROM configured_routes", 1)
        .await;
    after.stop().await;
}
