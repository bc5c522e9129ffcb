//! What the admin API tests share: sources for seeded rows, a gateway for them, requests,
//! listings, and bulk operations: starting, polling, cancelling them mid-way and killing
//! their process mid-batch.

use super::procs::{Hookgate, Role};
use super::sink::Sink;
use super::tokens::{ONCALL, VIEWER, admin_tokens};
use super::{Reply, Running, TestEnv, seed, sign};
use chrono::{DateTime, SecondsFormat, Utc};
use hookgate::app::Roles;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const SECRET: &str = "s3cret";
pub const WAIT: Duration = Duration::from_secs(30);
/// The configured `retry.max_attempts` of the seeded tests: a replay grants this many more.
pub const BUDGET: i64 = 4;
/// Attempts a seeded dead letter's delivery used up.
pub const SEEDED_ATTEMPTS: i64 = 3;
pub const NONE: [Uuid; 0] = [];

/// Sources `github` and `gitlab`, each with destination `ci`, for rows seeded in SQL.
pub fn seeded_sources() -> String {
    let source = |name: &str| {
        format!(
            r#"
            [[sources]]
            name = "{name}"
            provider = "github"
            secrets = ["{SECRET}"]
              [[sources.destinations]]
              name = "ci"
              url = "http://127.0.0.1:9/"
            "#
        )
    };
    format!(
        "[retry]\nmax_attempts = {BUDGET}\n{}{}{}",
        admin_tokens(),
        source("github"),
        source("gitlab")
    )
}

/// Receiver and admin API only: no worker touches the seeded deliveries, so whatever a replay
/// revives stays pending (and on its stream) to be counted.
pub async fn seeded_gateway(env: &TestEnv) -> Running {
    Running::start_with_roles(env.config(&seeded_sources()), Roles::RECEIVER).await
}

/// A gateway with a worker on the seeded sources: it leads (the only candidate), so it takes
/// over operations whose runner is gone. Its worker tries what they revive.
pub async fn leading_gateway(env: &TestEnv) -> Running {
    Running::start(env.config(&seeded_sources())).await
}

/// Source `github` delivering to `sink` as destination `billing`, on a millisecond-scale
/// schedule: `initial_delay` before the second attempt, no jitter.
pub fn delivering_to(sink: &Sink, max_attempts: u32, initial_delay: &str) -> String {
    format!(
        r#"
        [worker]
        concurrency = 8
        visibility_timeout = "10s"
        schedule_interval = "20ms"
        shutdown_deadline = "2s"

        [retry]
        max_attempts = {max_attempts}
        initial_delay = "{initial_delay}"
        multiplier = 2.0
        max_delay = "5s"
        jitter = 0.0
        {}
        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "billing"
          url = "{}"
          timeout = "5s"
        "#,
        admin_tokens(),
        sink.url
    )
}

pub async fn send(request: RequestBuilder) -> Reply {
    Reply::from(request.send().await.unwrap()).await
}

/// Posts a signed GitHub webhook and returns the event id.
pub async fn receive(gw: &Running, delivery: &str, body: &[u8]) -> Uuid {
    let reply = gw
        .post("github", &sign::github(SECRET, delivery, body), body)
        .await;
    assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    reply.json["id"].as_str().unwrap().parse().unwrap()
}

#[track_caller]
pub fn assert_problem(reply: &Reply, status: u16, slug: &str, detail_has: &str) {
    reply.assert_problem(status, slug);
    let detail = reply.json["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "{detail:?} lacks {detail_has:?}"
    );
}

pub fn uuid(value: &Value) -> Uuid {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .parse()
        .unwrap()
}

pub fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn item_ids(reply: &Reply) -> Vec<Uuid> {
    reply.json["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {reply:?}"))
        .iter()
        .map(|item| uuid(&item["id"]))
        .collect()
}

/// GETs a listing that must answer 200; its item ids in order.
pub async fn listed(gw: &Running, path: &str) -> Vec<Uuid> {
    let reply = gw.admin_get(path, VIEWER).await;
    assert_eq!(reply.status, 200, "{path}: {reply:?}");
    item_ids(&reply)
}

/// Follows `next_cursor` from `path` (whose query has `limit`) to the last page. Every page
/// but the last is full, the last is not empty (unless it is the only one). Returns the ids in
/// order and how many pages there were.
pub async fn walk(gw: &Running, path: &str, limit: usize) -> (Vec<Uuid>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 1..=1_000 {
        let url = match &cursor {
            None => path.to_string(),
            Some(cursor) => format!("{path}&cursor={cursor}"),
        };
        let reply = gw.admin_get(&url, VIEWER).await;
        assert_eq!(reply.status, 200, "{url}: {reply:?}");
        let items = item_ids(&reply);
        ids.extend(&items);
        match reply.json["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), limit, "a page before the last is full: {url}");
                cursor = Some(next.to_string());
            }
            None => {
                assert_eq!(reply.json["next_cursor"], Value::Null, "{reply:?}");
                assert!(items.len() <= limit, "{url}: {} items", items.len());
                assert!(page == 1 || !items.is_empty(), "{url}: empty last page");
                return (ids, page);
            }
        }
    }
    panic!("{path}: more than 1000 pages");
}

/// A row seeded with its time (`received_at` or `created_at`): what a listing must show.
#[derive(Clone, Copy)]
pub struct Row {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub source: &'static str,
    /// An event's status, or a dead letter's destination.
    pub kind: &'static str,
    pub replayed: bool,
}

/// The ids of `rows` that `keep` selects, newest first (time, then id, descending).
pub fn newest_first(rows: &[Row], keep: impl Fn(&Row) -> bool) -> Vec<Uuid> {
    let mut kept: Vec<&Row> = rows.iter().filter(|r| keep(r)).collect();
    kept.sort_by_key(|r| std::cmp::Reverse((r.at, r.id)));
    kept.iter().map(|r| r.id).collect()
}

/// Polls `GET path` until `done` holds, failing the test after [`WAIT`].
pub async fn poll(gw: &Running, path: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let started = Instant::now();
    loop {
        let reply = gw.admin_get(path, VIEWER).await;
        if done(&reply) {
            return reply;
        }
        assert!(started.elapsed() < WAIT, "gave up on {path}: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `source`'s deliveries pending after a replay with the configured budget ahead of them:
/// [`BUDGET`] attempts more than they had made.
pub async fn with_fresh_budget(env: &TestEnv, source: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.source = $1 AND d.state = 'pending' AND d.reason = 'replayed'
           AND d.max_attempts = d.attempts + $2::bigint",
    )
    .bind(source)
    .bind(BUDGET)
    .fetch_one(&env.db)
    .await
    .unwrap()
}

/// Holds a lock that makes replay and redelivery batches wait (both lock dead letters) but not
/// reads, until rolled back.
pub async fn lock_dead_letters(env: &TestEnv) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = env.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE dead_letters IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// The two kinds of bulk operation: what each acts on, how it is started, and what it has
/// done, so the tests of cancels and crashes hold for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    /// `POST /v1/dead-letters/replay` of open dead letters.
    Replay,
    /// `POST /v1/events/redeliver` of delivered events.
    Redeliver,
}

impl Bulk {
    fn path(self) -> &'static str {
        match self {
            Self::Replay => "/v1/dead-letters/replay",
            Self::Redeliver => "/v1/events/redeliver",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Redeliver => "redeliver",
        }
    }

    /// `count` items for it to act on, of `source` with destination `ci`: open dead letters,
    /// or delivered events.
    pub async fn seed(self, env: &TestEnv, source: &str, count: i32) {
        match self {
            Self::Replay => seed::dead_letters(&env.db, source, "ci", count).await,
            Self::Redeliver => {
                seed::delivered_events(&env.db, source, "ci", count).await;
            }
        }
    }

    /// How many of `source`'s deliveries it has revived (replayed or redelivered), each at
    /// most once.
    pub async fn done(self, env: &TestEnv, source: &str) -> i64 {
        let reason = match self {
            Self::Replay => "replayed",
            Self::Redeliver => "redelivered",
        };
        // The audit trail, not the deliveries' states: a worker may have moved those on since.
        let (revived, deliveries): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT (t.event_id, t.destination))
             FROM event_transitions t JOIN events e ON e.id = t.event_id
             WHERE e.source = $1 AND t.destination IS NOT NULL AND t.to_state = 'pending'
               AND t.reason = $2",
        )
        .bind(source)
        .bind(reason)
        .fetch_one(&env.db)
        .await
        .unwrap();
        assert_eq!(revived, deliveries, "a delivery was revived twice");
        deliveries
    }
}

/// Starts a bulk operation with `body` on the admin listener at `admin` (`http://...`);
/// asserts the 202 and its `Location`, returns the operation's path.
pub async fn start_bulk(admin: &str, bulk: Bulk, body: Value) -> (String, Reply) {
    let request = reqwest::Client::new()
        .post(format!("{admin}{}", bulk.path()))
        .bearer_auth(ONCALL)
        .json(&body);
    let reply = send(request).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let op = reply.header("location").expect("Location").to_string();
    assert_eq!(op, format!("/v1/operations/{}", uuid(&reply.json["id"])));
    assert_eq!(reply.json["href"], op);
    assert_eq!(reply.json["kind"], bulk.kind());
    assert_eq!(reply.json["state"], "running");
    assert_eq!(reply.json["replayed"], 0);
    (op, reply)
}

/// Starts a bulk replay; asserts the 202 and its `Location`, returns the operation's path.
pub async fn start_replay(gw: &Running, body: Value) -> (String, Reply) {
    start_bulk(&gw.admin, Bulk::Replay, body).await
}

/// `(state, replayed)` of an operation, straight from its row.
pub async fn progress(env: &TestEnv, id: Uuid) -> (String, i64) {
    sqlx::query_as("SELECT state, replayed FROM operations WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .unwrap()
}

/// Waits until the operation has committed a batch; fails the test after [`WAIT`].
pub async fn until_a_batch_committed(env: &TestEnv, id: Uuid) {
    let started = Instant::now();
    while progress(env, id).await.1 == 0 {
        assert!(started.elapsed() < WAIT, "no batch was committed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Cancels the running operation at `op` mid-way: once a batch has committed, while the
/// next waits at the dead-letters lock (the cancel waits for that batch). Asserts the `200`
/// of a cancelled operation that did not finish its `matched` and returns it.
pub async fn cancel_mid_way(env: &TestEnv, gw: &Running, op: &str) -> Reply {
    let id: Uuid = op.trim_start_matches("/v1/operations/").parse().unwrap();
    until_a_batch_committed(env, id).await;
    let lock = lock_dead_letters(env).await;
    let cancel = tokio::spawn(send(gw.admin_request(Method::DELETE, op, ONCALL)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.rollback().await.unwrap();
    let cancelled = cancel.await.unwrap();
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_eq!(cancelled.json["state"], "cancelled");
    assert!(cancelled.json["finished_at"].is_string(), "{cancelled:?}");
    let replayed = cancelled.json["replayed"].as_i64().unwrap();
    let matched = cancelled.json["matched"].as_i64().unwrap();
    assert!(0 < replayed && replayed < matched, "{cancelled:?}");
    cancelled
}

/// The process running a bulk operation over `total` items of `github` is killed (SIGKILL)
/// mid-batch. The operation stays `running` with exactly what it committed; once its lease
/// runs out the leader resumes from the last committed batch and finishes it. Returns
/// the finished operation.
pub async fn killed_mid_batch_and_resumed(env: &TestEnv, bulk: Bulk, total: i32) -> Reply {
    let dir = tempfile::tempdir().unwrap();
    let config = env.config_text(&seeded_sources());
    let mut doomed = Hookgate::start(dir.path(), "doomed", Role::Receive, &config).await;
    // Seeded once the process has migrated the schema.
    bulk.seed(env, "github", total).await;
    let (op, started) = start_bulk(&doomed.admin, bulk, json!({"source": "github"})).await;
    assert_eq!(started.json["matched"], total);
    let id = uuid(&started.json["id"]);
    until_a_batch_committed(env, id).await;
    // Hold the next batch at the table lock, then kill the process inside it: that batch rolls
    // back with the dead connection.
    let lock = lock_dead_letters(env).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    doomed.kill();
    lock.rollback().await.unwrap();

    let (state, before) = progress(env, id).await;
    assert_eq!(state, "running");
    let total = i64::from(total);
    assert!(
        before > 0 && before < total && before % 500 == 0,
        "{before}"
    );
    assert_eq!(
        bulk.done(env, "github").await,
        before,
        "what was counted is exactly what was committed"
    );

    // The dead runner's 30 s lease runs out (here at once), and the leader takes over.
    sqlx::query("UPDATE operations SET lease_until = now() WHERE id = $1")
        .bind(id)
        .execute(&env.db)
        .await
        .unwrap();
    let rescuer = leading_gateway(env).await;
    let finished = until_finished(&rescuer, &op).await;
    assert_eq!(finished.json["state"], "succeeded");
    assert_eq!(finished.json["matched"], total);
    assert_eq!(finished.json["replayed"], total);
    assert_eq!(bulk.done(env, "github").await, total);
    rescuer.stop().await;
    finished
}

/// Polls an operation until it answers `303 See Other`; every answer before is a running
/// operation with `Retry-After` whose progress only grows. Returns the 303.
pub async fn until_finished(gw: &Running, op: &str) -> Reply {
    let started = Instant::now();
    let mut replayed = 0;
    loop {
        let reply = gw.admin_get(op, VIEWER).await;
        match reply.status {
            200 => {
                assert_eq!(reply.json["state"], "running", "{reply:?}");
                assert_eq!(reply.retry_after.as_deref(), Some("2"), "{reply:?}");
                let now = reply.json["replayed"].as_i64().unwrap();
                assert!(now >= replayed, "progress went back: {now} < {replayed}");
                assert!(now <= reply.json["matched"].as_i64().unwrap(), "{reply:?}");
                replayed = now;
            }
            303 => {
                assert_eq!(
                    reply.header("location"),
                    Some(format!("{op}/result").as_str())
                );
                assert_ne!(reply.json["state"], "running", "{reply:?}");
                return reply;
            }
            _ => panic!("{op}: {reply:?}"),
        }
        assert!(started.elapsed() < WAIT, "{op} still running: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
