//! Retention against real Postgres: what a pass deletes, what it keeps, dead letters and their
//! events, the dry run, one pass at a time, and the metric a running worker keeps.

mod common;

use common::{TestEnv, redis_url, seed};
use hookgate::retention::{self, Policy};
use hookgate::store::Store;
use hookgate::store::retention::{BATCH, Deleted};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events are kept an hour, those of `long` ten days; dead letters two hours. Top-level keys,
/// so they come before any table.
const CONFIG: &str = r#"
    retention = "1h"
    dead_letter_retention = "2h"

    [[sources]]
    name = "short"
    provider = "github"
    secrets = ["s3cret"]

    [[sources]]
    name = "long"
    provider = "github"
    secrets = ["s3cret"]
    retention = "10d"
"#;

async fn store(env: &TestEnv) -> Store {
    let store = Store::connect_lazy(&env.database_url, 4).unwrap();
    store.migrate().await.unwrap();
    store
}

fn policy(env: &TestEnv) -> Policy {
    Policy::new(&env.config(CONFIG))
}

/// One pass, which no other pass may be holding up.
async fn pass(store: &Store, policy: &Policy) -> Deleted {
    retention::pass(store, policy, &CancellationToken::new())
        .await
        .unwrap()
        .expect("no other pass is running")
}

/// A delivered event of `source` received `age` ago (an SQL interval), with a delivery to each
/// of `destinations` that succeeded at attempt `attempts`. Its arrival is recorded as the
/// receiver's insert records it; the audit triggers add one transition per delivery and one
/// for the event.
async fn delivered_event(
    db: &PgPool,
    source: &str,
    destinations: &[&str],
    attempts: i32,
    age: &str,
) -> Uuid {
    let id = Uuid::new_v4();
    let mut tx = db.begin().await.unwrap();
    let statements = [
        "INSERT INTO events (id, source, external_id, payload, headers, received_at)
         SELECT $1, $2, 'ext-' || $1::text, '{}', '[]', now() - $5::interval",
        "INSERT INTO deliveries (event_id, destination, max_attempts)
         SELECT $1, d, 10 FROM unnest($3::text[]) d",
        "INSERT INTO delivery_attempts (event_id, destination, attempt, status_code, duration_ms)
         SELECT $1, d, n, CASE WHEN n = $4 THEN 200 ELSE 500 END, 3
         FROM unnest($3::text[]) d, generate_series(1, $4) n",
        "UPDATE deliveries SET state = 'delivered', reason = 'delivered', attempts = $4
         WHERE event_id = $1",
        "UPDATE events SET status = 'delivered' WHERE id = $1",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(id)
            .bind(source)
            .bind(destinations)
            .bind(attempts)
            .bind(age)
            .execute(&mut *tx)
            .await
            .unwrap();
        if sql.starts_with("INSERT INTO events") {
            seed::arrival(&mut *tx, id).await;
        }
    }
    tx.commit().await.unwrap();
    id
}

/// A dead letter of `source`, created `age` ago, whose event (dead-lettered, one dead delivery,
/// its arrival recorded) was received `event_age` ago. Returns `(dead letter, event)`.
async fn dead_letter(db: &PgPool, source: &str, age: &str, event_age: &str) -> (Uuid, Uuid) {
    let id = seed::dead_letter(db, source, "ci", "now").await;
    let event: Uuid = sqlx::query_scalar(
        "WITH d AS (
             UPDATE dead_letters SET created_at = now() - $2::interval WHERE id = $1
             RETURNING event_id
         )
         UPDATE events SET received_at = now() - $3::interval FROM d WHERE id = d.event_id
         RETURNING id",
    )
    .bind(id)
    .bind(age)
    .bind(event_age)
    .fetch_one(db)
    .await
    .unwrap();
    seed::arrival(db, event).await;
    (id, event)
}

/// The event's rows: itself, deliveries, attempts, audit rows, dead letters.
async fn rows(db: &PgPool, event: Uuid) -> [i64; 5] {
    let (a, b, c, d, e) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE id = $1),
                (SELECT count(*) FROM deliveries WHERE event_id = $1),
                (SELECT count(*) FROM delivery_attempts WHERE event_id = $1),
                (SELECT count(*) FROM event_transitions WHERE event_id = $1),
                (SELECT count(*) FROM dead_letters WHERE event_id = $1)",
    )
    .bind(event)
    .fetch_one(db)
    .await
    .unwrap();
    [a, b, c, d, e]
}

/// Every row of the five tables retention deletes from.
async fn all_rows(db: &PgPool) -> [i64; 5] {
    let (a, b, c, d, e) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries),
                (SELECT count(*) FROM delivery_attempts), (SELECT count(*) FROM event_transitions),
                (SELECT count(*) FROM dead_letters)",
    )
    .fetch_one(db)
    .await
    .unwrap();
    [a, b, c, d, e]
}

#[tokio::test]
async fn settled_events_past_retention_go_with_their_deliveries_attempts_and_transitions() {
    let env = TestEnv::new().await;
    let store = store(&env).await;
    let old = delivered_event(&env.db, "short", &["ci", "audit"], 2, "2 hours").await;
    let young = delivered_event(&env.db, "short", &["ci", "audit"], 2, "10 minutes").await;
    assert_eq!(rows(&env.db, old).await, [1, 2, 4, 4, 0]);

    let deleted = pass(&store, &policy(&env)).await;

    assert_eq!(rows(&env.db, old).await, [0; 5]);
    assert_eq!(rows(&env.db, young).await, [1, 2, 4, 4, 0]);
    assert_eq!(
        deleted,
        Deleted {
            events: 1,
            deliveries: 2,
            delivery_attempts: 4,
            event_transitions: 4,
            dead_letters: 0,
        }
    );
}

#[tokio::test]
async fn pending_events_are_never_deleted_however_old() {
    let env = TestEnv::new().await;
    let store = store(&env).await;
    let waiting = seed::pending_delivery(&env.db, "short", "ci").await;
    let pending = seed::event(&env.db, "short", "no-deliveries", "now", "pending").await;
    // A delivery still owed keeps the event, whatever its status says.
    let half = delivered_event(&env.db, "short", &["ci"], 1, "1 year").await;
    sqlx::query(
        "INSERT INTO deliveries (event_id, destination, max_attempts) VALUES ($1, 'audit', 3)",
    )
    .bind(half)
    .execute(&env.db)
    .await
    .unwrap();
    sqlx::query("UPDATE events SET received_at = now() - interval '1 year'")
        .execute(&env.db)
        .await
        .unwrap();
    let before = all_rows(&env.db).await;

    let deleted = pass(&store, &policy(&env)).await;

    assert_eq!(deleted, Deleted::default());
    assert_eq!(all_rows(&env.db).await, before);
    for event in [waiting, pending, half] {
        assert_eq!(rows(&env.db, event).await[0], 1);
    }
}

#[tokio::test]
async fn each_source_keeps_its_events_for_its_own_retention() {
    let env = TestEnv::new().await;
    let store = store(&env).await;
    let short = delivered_event(&env.db, "short", &[], 0, "2 hours").await;
    let long = delivered_event(&env.db, "long", &[], 0, "2 hours").await;
    let long_expired = delivered_event(&env.db, "long", &[], 0, "11 days").await;
    // A source no longer configured follows the global retention.
    let removed = delivered_event(&env.db, "removed", &[], 0, "2 hours").await;

    let deleted = pass(&store, &policy(&env)).await;

    assert_eq!(deleted.events, 3);
    for (event, kept) in [
        (short, false),
        (long, true),
        (long_expired, false),
        (removed, false),
    ] {
        assert_eq!(rows(&env.db, event).await[0], i64::from(kept), "{event}");
    }
}

#[tokio::test]
async fn dead_letters_and_their_events_stay_whole_until_dead_letter_retention() {
    let env = TestEnv::new().await;
    let store = store(&env).await;
    let policy = policy(&env);
    // The event is past its own retention; its dead letter is not.
    let (letter, event) = dead_letter(&env.db, "short", "90 minutes", "3 hours").await;

    assert_eq!(pass(&store, &policy).await, Deleted::default());
    assert_eq!(rows(&env.db, event).await, [1, 1, 0, 1, 1]);
    let shown = store.dead_letter(letter).await.unwrap();
    assert_eq!(
        shown.summary.event_id, event,
        "dlq show still finds the event"
    );

    sqlx::query("UPDATE dead_letters SET created_at = now() - interval '3 hours'")
        .execute(&env.db)
        .await
        .unwrap();
    let deleted = pass(&store, &policy).await;

    assert_eq!(rows(&env.db, event).await, [0; 5]);
    assert_eq!(
        deleted,
        Deleted {
            events: 1,
            deliveries: 1,
            event_transitions: 1,
            dead_letters: 1,
            ..Deleted::default()
        },
        "the event goes in the pass that deletes its last dead letter"
    );
}

#[tokio::test]
async fn an_event_cannot_be_deleted_while_it_has_a_dead_letter() {
    let env = TestEnv::new().await;
    store(&env).await;
    let (letter, event) = dead_letter(&env.db, "short", "1 minute", "1 minute").await;

    let error = sqlx::query("DELETE FROM events WHERE id = $1")
        .bind(event)
        .execute(&env.db)
        .await
        .unwrap_err();

    let code = error.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23503"), "{error}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE id = $1")
        .bind(letter)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn a_pass_walks_past_the_rows_it_keeps_batch_after_batch() {
    let env = TestEnv::new().await;
    let store = store(&env).await;
    let n = BATCH as i32 + 100;
    // The oldest events are pending: whole batches of them are kept and walked past.
    sqlx::query(
        "INSERT INTO events (id, source, external_id, payload, headers, received_at, status)
         SELECT gen_random_uuid(), 'short', 'e' || i, '{}', '[]',
                now() - interval '1 day' + i * interval '1 second',
                CASE WHEN i <= $1 THEN 'pending' ELSE 'delivered' END
         FROM generate_series(1, 2 * $1) i",
    )
    .bind(n)
    .execute(&env.db)
    .await
    .unwrap();
    seed::dead_letters(&env.db, "short", "ci", n).await;
    sqlx::query("UPDATE dead_letters SET created_at = created_at - interval '3 hours'")
        .execute(&env.db)
        .await
        .unwrap();

    let deleted = pass(&store, &policy(&env)).await;

    // The dead letters' events were received just now: they are kept.
    assert_eq!(deleted.dead_letters, n as u64);
    assert_eq!(deleted.events, n as u64);
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status = 'pending'")
            .await,
        i64::from(n)
    );
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status = 'delivered'")
            .await,
        0
    );
}

fn hookgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    command
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_REDIS_URL")
        .env_remove("HOOKGATE_LOG");
    command
}

/// `hookgate retention run` with `args`, on the test's schema.
fn retention_run(env: &TestEnv, args: &[&str]) -> Output {
    let file = env.config_file(CONFIG);
    hookgate()
        .arg("--config")
        .arg(file.path())
        .args(["retention", "run"])
        .args(args)
        .output()
        .unwrap()
}

/// The `TABLE  COUNT` lines of `retention run`'s output, after its header.
fn printed_counts(out: &Output) -> BTreeMap<String, u64> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (table, n) = line.split_once(char::is_whitespace)?;
            Some((table.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn counts(pairs: [(&str, u64); 5]) -> BTreeMap<String, u64> {
    pairs.into_iter().map(|(t, n)| (t.to_string(), n)).collect()
}

#[tokio::test]
async fn a_dry_run_prints_what_a_pass_would_delete_and_deletes_nothing() {
    let env = TestEnv::new().await;
    store(&env).await;
    delivered_event(&env.db, "short", &["ci"], 1, "2 hours").await;
    delivered_event(&env.db, "short", &["ci"], 1, "10 minutes").await;
    // Its dead letter expires, so the pass deletes its event too.
    dead_letter(&env.db, "short", "3 hours", "3 hours").await;
    dead_letter(&env.db, "short", "90 minutes", "3 hours").await;
    let before = all_rows(&env.db).await;
    let expected = counts([
        ("events", 2),
        ("deliveries", 2),
        ("delivery_attempts", 1),
        ("event_transitions", 4),
        ("dead_letters", 1),
    ]);

    let dry = retention_run(&env, &["--dry-run"]);

    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        stdout.starts_with("TABLE") && stdout.contains("WOULD DELETE"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("dry run: nothing was deleted\n"),
        "{stdout}"
    );
    assert_eq!(printed_counts(&dry), expected);
    assert_eq!(all_rows(&env.db).await, before);

    let real = retention_run(&env, &[]);

    assert!(String::from_utf8_lossy(&real.stdout).contains("DELETED"));
    assert_eq!(
        printed_counts(&real),
        expected,
        "the dry run told the truth"
    );
    assert_eq!(all_rows(&env.db).await[0], 2);
}

#[tokio::test]
async fn a_pass_is_skipped_while_another_holds_the_lock() {
    let env = TestEnv::new().await;
    let store = store(&env).await;
    let policy = policy(&env);
    let old = delivered_event(&env.db, "short", &["ci"], 1, "2 hours").await;
    let held = store
        .retention_sweeper()
        .await
        .unwrap()
        .expect("the lock is free");

    let skipped = retention::pass(&store, &policy, &CancellationToken::new()).await;
    let other_process = retention_run(&env, &[]);

    assert!(skipped.unwrap().is_none());
    assert!(!other_process.status.success());
    let stderr = String::from_utf8_lossy(&other_process.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some(
            "hookgate: another process is running a retention pass; nothing was deleted, try again later"
        ),
        "{stderr}"
    );
    assert_eq!(rows(&env.db, old).await[0], 1);

    held.release().await.unwrap();
    assert_eq!(pass(&store, &policy).await.events, 1);
    assert_eq!(rows(&env.db, old).await[0], 0);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `hookgate work` process of its own has a metrics recorder of its own: its counters are
/// exactly what its passes deleted.
#[tokio::test]
async fn a_worker_runs_passes_and_counts_what_they_delete_by_table() {
    let env = TestEnv::new().await;
    store(&env).await;
    delivered_event(&env.db, "short", &["ci", "audit"], 2, "2 hours").await;
    delivered_event(&env.db, "short", &["ci", "audit"], 2, "2 hours").await;
    dead_letter(&env.db, "short", "3 hours", "3 hours").await;
    let admin_port = free_port();
    let text = format!(
        r#"
        listen = "127.0.0.1:{}"
        admin_listen = "127.0.0.1:{admin_port}"
        database_url = "{}"
        redis_url = "{}"
        stream_prefix = "{}"
        retention_interval = "1s"
        {CONFIG}"#,
        free_port(),
        env.database_url,
        redis_url(),
        env.prefix
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let mut child = hookgate()
        .arg("--config")
        .arg(file.path())
        .args(["--log-format", "json", "work"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let expected = counts([
        ("events", 3),
        ("deliveries", 5),
        ("delivery_attempts", 8),
        ("event_transitions", 9),
        ("dead_letters", 1),
    ]);
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut seen = BTreeMap::new();
    while seen != expected {
        if let Some(status) = child.try_wait().unwrap() {
            let mut logs = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
            panic!("hookgate work exited with {status}:\n{logs}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "metrics {seen:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(response) = http
            .get(format!("http://127.0.0.1:{admin_port}/metrics"))
            .send()
            .await
        else {
            continue;
        };
        seen = deleted_metric(&response.text().await.unwrap());
    }
    // Later passes find nothing: the counts stay.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(deleted_metric(&text), expected);

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let (status, logs) = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
        (status, logs)
    })
    .await
    .unwrap();
    assert!(status.success(), "{logs}");
    let passes: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "retention pass")
        .collect();
    assert!(
        passes.iter().any(|p| p["events"] == 3
            && p["deliveries"] == 5
            && p["delivery_attempts"] == 8
            && p["event_transitions"] == 9
            && p["dead_letters"] == 1),
        "no log line of the pass that deleted the rows in:\n{logs}"
    );
}

/// `hookgate_retention_deleted_total` by table.
fn deleted_metric(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("hookgate_retention_deleted_total{table=\"")?;
            let (table, value) = rest.split_once("\"} ")?;
            Some((table.to_string(), value.parse().ok()?))
        })
        .collect()
}
