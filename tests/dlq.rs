//! `hookgate dlq` and `hookgate events`: the real binary against real Postgres and Redis, with
//! dead letters and events seeded directly in the test's schema.

mod common;

use common::{TestEnv, redis_url, seed};
use serde_json::Value;
use std::io::Write;
use uuid::Uuid;

/// The configured retry budget: a replay allows this many more attempts.
const MAX_ATTEMPTS: i32 = 4;

struct Cli {
    env: TestEnv,
    config: tempfile::NamedTempFile,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.stdout))
    }

    #[track_caller]
    fn assert_ok(&self) -> &Self {
        assert!(self.ok, "failed: {}\n{}", self.stderr, self.stdout);
        self
    }

    #[track_caller]
    fn assert_fails_with(&self, message: &str) {
        assert!(!self.ok, "succeeded: {}", self.stdout);
        assert!(
            self.stderr.starts_with("hookgate: ") && self.stderr.contains(message),
            "missing {message:?} in {}",
            self.stderr
        );
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "{}", self.stderr);
    }
}

impl Cli {
    /// A migrated schema and a config with source `github` (destination `ci`).
    async fn new() -> Self {
        Self::with_redis(&redis_url()).await
    }

    async fn with_redis(redis: &str) -> Self {
        let env = TestEnv::new().await;
        let mut config = tempfile::NamedTempFile::new().unwrap();
        write!(
            config,
            r#"
            database_url = "{}"
            redis_url = "{redis}"
            stream_prefix = "{}"
            [retry]
            max_attempts = {MAX_ATTEMPTS}
            [[sources]]
            name = "github"
            provider = "github"
            secrets = ["x"]
              [[sources.destinations]]
              name = "ci"
              url = "http://127.0.0.1:9/"
            "#,
            env.database_url, env.prefix
        )
        .unwrap();
        let cli = Self { env, config };
        cli.run(&["migrate"]).await.assert_ok();
        cli
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .env_remove("HOOKGATE_DATABASE_URL")
            .env_remove("HOOKGATE_REDIS_URL")
            .arg("--config")
            .arg(self.config.path())
            .args(args)
            .output()
            .await
            .unwrap();
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    async fn dlq(&self, args: &[&str]) -> Output {
        let mut all = vec!["dlq"];
        all.extend_from_slice(args);
        self.run(&all).await
    }

    async fn count(&self, sql: &'static str) -> i64 {
        self.env.count(sql).await
    }

    /// The delivery's state, reason, and the attempts it has left.
    async fn delivery(&self, dead_letter: Uuid) -> (String, String, i32) {
        sqlx::query_as(
            "SELECT d.state, d.reason, d.max_attempts - d.attempts FROM deliveries d
             JOIN dead_letters l ON l.event_id = d.event_id AND l.destination = d.destination
             WHERE l.id = $1",
        )
        .bind(dead_letter)
        .fetch_one(&self.env.db)
        .await
        .unwrap()
    }

    async fn replayed_at(&self, dead_letter: Uuid) -> Option<chrono::DateTime<chrono::Utc>> {
        sqlx::query_scalar("SELECT replayed_at FROM dead_letters WHERE id = $1")
            .bind(dead_letter)
            .fetch_one(&self.env.db)
            .await
            .unwrap()
    }

    async fn event_status(&self, dead_letter: Uuid) -> String {
        sqlx::query_scalar(
            "SELECT e.status FROM events e JOIN dead_letters l ON l.event_id = e.id
             WHERE l.id = $1",
        )
        .bind(dead_letter)
        .fetch_one(&self.env.db)
        .await
        .unwrap()
    }
}

/// The ids in a `list` table, top to bottom.
fn listed(out: &Output) -> Vec<Uuid> {
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|w| Uuid::parse_str(w).ok())
        .collect()
}

fn json_ids(value: &Value) -> Vec<Uuid> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Uuid::parse_str(v["id"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn list_shows_open_dead_letters_newest_first_with_filters() {
    let cli = Cli::new().await;
    let long_error = format!("HTTP 500: {}", "x".repeat(200));
    let a = seed::dead_letter_with(
        &cli.env.db,
        "github",
        "ci",
        "2026-01-01T09:00:00Z",
        b"a",
        &long_error,
    )
    .await;
    let b = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T10:00:00Z").await;
    let c = seed::dead_letter(&cli.env.db, "gitlab", "ci", "2026-01-01T11:00:00Z").await;
    let d = seed::dead_letter(&cli.env.db, "github", "audit", "2026-01-01T12:00:00Z").await;
    let replayed = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T08:00:00Z").await;
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
        .bind(replayed)
        .execute(&cli.env.db)
        .await
        .unwrap();

    let out = cli.dlq(&["list"]).await;
    out.assert_ok();
    assert_eq!(listed(&out), vec![d, c, b, a], "{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&"4 dead letter(s)"));
    let header = lines[0];
    for column in [
        "ID",
        "CREATED",
        "SOURCE",
        "DESTINATION",
        "ATTEMPTS",
        "KIND",
        "LAST STATUS",
        "LAST ERROR",
    ] {
        assert!(header.contains(column), "{header}");
    }
    // Aligned: every column starts at the same offset on every line.
    let created = header.find("CREATED").unwrap();
    let kind = header.find("KIND").unwrap();
    for line in &lines[1..5] {
        assert!(line[created..].starts_with("2026-01-01T"), "{line}");
        assert!(line[kind..].starts_with("rejected "), "{line}");
    }
    let a_line = lines[4];
    assert!(a_line.contains("2026-01-01T09:00:00Z  github"), "{a_line}");
    assert!(a_line.contains("HTTP 500: xxx"), "{a_line}");
    assert!(
        !a_line.contains(&long_error),
        "error not truncated: {a_line}"
    );
    assert!(a_line.chars().count() < 200, "{a_line}");

    let ids = |args: &'static [&'static str]| {
        let cli = &cli;
        async move {
            let out = cli.dlq(args).await;
            out.assert_ok();
            listed(&out)
        }
    };
    let all = cli.dlq(&["list", "--include-replayed"]).await;
    assert_eq!(listed(all.assert_ok()), vec![d, c, b, a, replayed]);
    let replayed_line = all.stdout.lines().nth(5).unwrap();
    let column = all.stdout.lines().next().unwrap().find("REPLAYED").unwrap();
    assert!(replayed_line[column..].starts_with("20"), "{}", all.stdout);
    assert_eq!(ids(&["list", "--source", "github"]).await, vec![d, b, a]);
    assert_eq!(ids(&["list", "--destination", "ci"]).await, vec![c, b, a]);
    assert_eq!(
        ids(&["list", "--source", "github", "--destination", "ci"]).await,
        vec![b, a]
    );
    // --since is inclusive, --until exclusive.
    assert_eq!(
        ids(&["list", "--since", "2026-01-01T10:00:00Z"]).await,
        vec![d, c, b]
    );
    assert_eq!(
        ids(&["list", "--until", "2026-01-01T10:00:00Z"]).await,
        vec![a]
    );
    assert_eq!(
        ids(&[
            "list",
            "--since",
            "2026-01-01T10:00:00Z",
            "--until",
            "2026-01-01T12:00:00Z"
        ])
        .await,
        vec![c, b]
    );
    assert_eq!(ids(&["list", "--since", "1h"]).await, Vec::<Uuid>::new());
    assert_eq!(ids(&["list", "--until", "1h"]).await, vec![d, c, b, a]);
    assert_eq!(ids(&["list", "--limit", "2"]).await, vec![d, c]);
    let none = cli.dlq(&["list", "--source", "removed-long-ago"]).await;
    none.assert_ok();
    assert_eq!(none.stdout.trim(), "0 dead letter(s)");
}

#[tokio::test]
async fn list_json_is_an_array_of_dead_letters() {
    let cli = Cli::new().await;
    let a = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let b = seed::dead_letter(&cli.env.db, "gitlab", "ci", "2026-01-01T10:00:00Z").await;

    let out = cli.dlq(&["list", "--json"]).await;
    out.assert_ok();
    let rows = out.json();
    assert_eq!(json_ids(&rows), vec![b, a]);
    let row = &rows[1];
    for key in [
        "id",
        "event_id",
        "source",
        "destination",
        "attempts",
        "failure_kind",
        "last_status",
        "last_error",
        "first_attempt_at",
        "last_attempt_at",
        "created_at",
        "replayed_at",
    ] {
        assert!(row.get(key).is_some(), "missing {key} in {row}");
    }
    assert_eq!(row["source"], "github");
    assert_eq!(row["destination"], "ci");
    assert_eq!(row["attempts"], 3);
    assert_eq!(row["failure_kind"], "rejected");
    assert_eq!(row["last_status"], 500);
    assert_eq!(row["last_error"], "HTTP 500");
    assert_eq!(row["replayed_at"], Value::Null);
    let created: chrono::DateTime<chrono::Utc> =
        row["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        created,
        "2026-01-01T09:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );

    let out = cli.dlq(&["list", "--json", "--source", "gitlab"]).await;
    assert_eq!(json_ids(&out.assert_ok().json()), vec![b]);
    let out = cli.dlq(&["list", "--json", "--limit", "1"]).await;
    assert_eq!(json_ids(&out.assert_ok().json()), vec![b]);
}

#[tokio::test]
async fn show_prints_the_dead_letter_its_event_and_payload() {
    let cli = Cli::new().await;
    let text = seed::dead_letter_with(
        &cli.env.db,
        "github",
        "ci",
        "2026-01-01T09:00:00Z",
        b"{\"action\":\"opened\"}",
        "HTTP 502: bad gateway",
    )
    .await;
    let binary = seed::dead_letter_with(
        &cli.env.db,
        "github",
        "ci",
        "2026-01-01T09:00:00Z",
        &[0xff, 0x00, 0xfe],
        "timeout",
    )
    .await;
    let event: Uuid = sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE id = $1")
        .bind(text)
        .fetch_one(&cli.env.db)
        .await
        .unwrap();

    let out = cli.dlq(&["show", &text.to_string()]).await;
    out.assert_ok();
    for expected in [
        text.to_string(),
        event.to_string(),
        format!("ext-{event}"),
        "HTTP 502: bad gateway".to_string(),
        "2026-01-01T09:00:00Z".to_string(),
        "rejected".to_string(),
        "{\"action\":\"opened\"}".to_string(),
    ] {
        assert!(
            out.stdout.contains(&expected),
            "missing {expected:?} in {}",
            out.stdout
        );
    }

    let out = cli.dlq(&["show", &binary.to_string()]).await;
    out.assert_ok();
    assert!(out.stdout.contains("base64"), "{}", out.stdout);
    assert!(out.stdout.contains("/wD+"), "{}", out.stdout);

    let out = cli.dlq(&["show", "--json", &text.to_string()]).await;
    let json = out.assert_ok().json();
    assert_eq!(json["id"], text.to_string());
    assert_eq!(json["event_id"], event.to_string());
    assert_eq!(json["external_id"], format!("ext-{event}"));
    assert!(json["received_at"].is_string(), "{json}");
    assert_eq!(json["payload"], "{\"action\":\"opened\"}");
    assert!(json.get("payload_base64").is_none(), "{json}");
    assert_eq!(json["last_error"], "HTTP 502: bad gateway");

    let out = cli.dlq(&["show", "--json", &binary.to_string()]).await;
    let json = out.assert_ok().json();
    assert_eq!(json["payload_base64"], "/wD+");
    assert!(json.get("payload").is_none(), "{json}");
}

#[tokio::test]
async fn show_refuses_unknown_and_malformed_ids() {
    let cli = Cli::new().await;
    let unknown = Uuid::new_v4();
    cli.dlq(&["show", &unknown.to_string()])
        .await
        .assert_fails_with(&format!("no dead letter {unknown}"));
    cli.dlq(&["show", "not-a-uuid"])
        .await
        .assert_fails_with("\"not-a-uuid\" is not a dead letter id");
}

#[tokio::test]
async fn replaying_one_dead_letter_revives_its_delivery_and_queues_its_event() {
    let cli = Cli::new().await;
    let id = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let other = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;

    let out = cli.dlq(&["replay", &id.to_string()]).await;
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "replayed 1 dead letter(s)");

    assert!(cli.replayed_at(id).await.is_some());
    // A fresh budget: the configured max_attempts more than the attempts made so far.
    assert_eq!(
        cli.delivery(id).await,
        ("pending".to_string(), "replayed".to_string(), MAX_ATTEMPTS)
    );
    assert_eq!(cli.event_status(id).await, "pending");
    let (lease_until, lease_token, due): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<Uuid>,
        bool,
    ) = sqlx::query_as(
        "SELECT d.lease_until, d.lease_token, d.next_attempt_at <= now() FROM deliveries d
             JOIN dead_letters l ON l.event_id = d.event_id WHERE l.id = $1",
    )
    .bind(id)
    .fetch_one(&cli.env.db)
    .await
    .unwrap();
    assert_eq!((lease_until, lease_token, due), (None, None, true));
    let transitions: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.from_state, t.to_state, t.reason FROM event_transitions t
         JOIN dead_letters l ON l.event_id = t.event_id
         WHERE l.id = $1 AND t.destination = 'ci'",
    )
    .bind(id)
    .fetch_all(&cli.env.db)
    .await
    .unwrap();
    assert_eq!(
        transitions,
        vec![(
            "dead".to_string(),
            "pending".to_string(),
            "replayed".to_string()
        )]
    );
    assert_eq!(cli.env.stream_len("github").await, 1);

    // The other dead letter is untouched, and only it is still listed.
    assert!(cli.replayed_at(other).await.is_none());
    assert_eq!(cli.delivery(other).await.0, "dead");
    assert_eq!(cli.event_status(other).await, "dead_lettered");
    let out = cli.dlq(&["list"]).await;
    assert_eq!(listed(out.assert_ok()), vec![other]);
}

/// A dead letter of a source no longer configured could only be revived for nobody: naming
/// it fails and replays nothing; `--all` replays the rest and fails, counting what it skipped.
#[tokio::test]
async fn replaying_for_a_source_no_longer_configured_fails_and_revives_nothing() {
    let cli = Cli::new().await;
    let gone = seed::dead_letter(&cli.env.db, "gitlab", "ci", "2026-01-01T09:00:00Z").await;
    let open = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T10:00:00Z").await;

    cli.dlq(&["replay", &open.to_string(), &gone.to_string()])
        .await
        .assert_fails_with(&format!(
            "dead letter {gone} cannot be replayed: destination gitlab/ci is no longer configured"
        ));
    assert!(cli.replayed_at(open).await.is_none(), "nothing replayed");

    let out = cli
        .dlq(&["replay", "--all", "--until", "1h", "--json"])
        .await;
    out.assert_fails_with("1 dead letter(s) not replayed");
    assert_eq!(out.json()["replayed"], 1);
    assert!(cli.replayed_at(open).await.is_some());
    assert!(cli.replayed_at(gone).await.is_none());
    assert_eq!(
        cli.delivery(gone).await,
        ("dead".to_string(), "received".to_string(), 0),
        "still dead, granted no attempts"
    );
    assert_eq!(cli.env.stream_len("gitlab").await, 0);
}

#[tokio::test]
async fn replaying_an_already_replayed_or_unknown_id_changes_nothing() {
    let cli = Cli::new().await;
    let done = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let open = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    cli.dlq(&["replay", &done.to_string()]).await.assert_ok();
    let replayed_at = cli.replayed_at(done).await.unwrap();
    let transitions = cli.count("SELECT count(*) FROM event_transitions").await;

    cli.dlq(&["replay", &open.to_string(), &done.to_string()])
        .await
        .assert_fails_with(&format!("dead letter {done} was already replayed at "));
    let unknown = Uuid::new_v4();
    cli.dlq(&["replay", &open.to_string(), &unknown.to_string()])
        .await
        .assert_fails_with(&format!("no dead letter {unknown}"));
    cli.dlq(&["replay", &open.to_string(), "bogus"])
        .await
        .assert_fails_with("\"bogus\" is not a dead letter id");

    assert_eq!(cli.replayed_at(done).await, Some(replayed_at));
    assert!(cli.replayed_at(open).await.is_none());
    assert_eq!(cli.delivery(open).await.0, "dead");
    assert_eq!(
        cli.count("SELECT count(*) FROM event_transitions").await,
        transitions
    );
    assert_eq!(cli.env.stream_len("github").await, 1);
}

#[tokio::test]
async fn replay_all_with_since_replays_exactly_the_matching_thousands() {
    let cli = Cli::new().await;
    seed::dead_letters(&cli.env.db, "github", "ci", 2_500).await;
    // Older than the window: left dead.
    sqlx::query(
        "WITH e AS (
             INSERT INTO events (id, source, external_id, payload, headers, status)
             SELECT gen_random_uuid(), 'github', 'old-' || g, '{}', '[]', 'dead_lettered'
             FROM generate_series(1, 300) g RETURNING id
         ), d AS (
             INSERT INTO deliveries (event_id, destination, state, attempts, max_attempts)
             SELECT id, 'ci', 'dead', 3, 3 FROM e
         )
         INSERT INTO dead_letters (id, event_id, source, destination, payload, attempts,
                                   failure_kind, created_at)
         SELECT gen_random_uuid(), id, 'github', 'ci', '{}', 3, 'rejected', now() - interval '3 days'
         FROM e",
    )
    .execute(&cli.env.db)
    .await
    .unwrap();

    let out = cli
        .dlq(&["replay", "--all", "--since", "2h", "--json"])
        .await;
    let json = out.assert_ok().json();
    assert_eq!(json["replayed"], 2_500, "{}", out.stderr);
    assert_eq!(json["ids"].as_array().unwrap().len(), 1000);
    assert_eq!(json["ids_omitted"], 1_500);

    assert_eq!(
        cli.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL AND created_at > now() - interval '2 hours'")
            .await,
        2_500
    );
    assert_eq!(
        cli.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
            .await,
        300
    );
    let budgeted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries
         WHERE state = 'pending' AND max_attempts - attempts = $1",
    )
    .bind(MAX_ATTEMPTS)
    .fetch_one(&cli.env.db)
    .await
    .unwrap();
    assert_eq!(budgeted, 2_500);
    assert_eq!(
        cli.count("SELECT count(*) FROM deliveries WHERE state = 'dead'")
            .await,
        300
    );
    assert_eq!(
        cli.count("SELECT count(*) FROM events WHERE status = 'pending'")
            .await,
        2_500
    );
    assert_eq!(
        cli.count(
            "SELECT count(*) FROM events WHERE status = 'pending' AND external_id LIKE 'old-%'"
        )
        .await,
        0
    );
    assert_eq!(cli.env.stream_len("github").await, 2_500);

    // Nothing is left to replay in the window.
    let out = cli.dlq(&["replay", "--all", "--since", "2h"]).await;
    assert_eq!(out.assert_ok().stdout.trim(), "replayed 0 dead letter(s)");
    assert_eq!(cli.env.stream_len("github").await, 2_500);
}

#[tokio::test]
async fn replay_needs_ids_or_all() {
    let cli = Cli::new().await;
    // Refused by the argument parser, which names what is missing or what clashes.
    let out = cli.dlq(&["replay"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(out.stderr.contains("<IDS>"), "{}", out.stderr);
    let id = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let out = cli.dlq(&["replay", &id.to_string(), "--all"]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("cannot be used with '--all'"),
        "{}",
        out.stderr
    );
    assert!(cli.replayed_at(id).await.is_none());
}

#[tokio::test]
async fn replay_succeeds_with_a_warning_when_redis_is_down() {
    let cli = Cli::with_redis("redis://127.0.0.1:9").await;
    let id = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;

    let out = cli.dlq(&["replay", &id.to_string()]).await;
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "replayed 1 dead letter(s)");
    assert!(
        out.stderr.contains("scheduler will enqueue"),
        "{}",
        out.stderr
    );
    assert_eq!(cli.delivery(id).await.0, "pending");
}

#[tokio::test]
async fn purge_deletes_dead_letters_and_leaves_deliveries_dead() {
    let cli = Cli::new().await;
    let one = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let gitlab = seed::dead_letter(&cli.env.db, "gitlab", "ci", "2026-01-01T09:00:00Z").await;
    for _ in 0..3 {
        seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T10:00:00Z").await;
    }

    let out = cli.dlq(&["purge", &one.to_string()]).await;
    assert_eq!(out.assert_ok().stdout.trim(), "purged 1 dead letter(s)");
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 4);
    assert_eq!(
        cli.count("SELECT count(*) FROM deliveries WHERE state = 'dead'")
            .await,
        5
    );

    let unknown = Uuid::new_v4();
    cli.dlq(&["purge", &gitlab.to_string(), &unknown.to_string()])
        .await
        .assert_fails_with(&format!("no dead letter {unknown}"));
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 4);

    let out = cli
        .dlq(&["purge", "--all", "--source", "gitlab", "--json"])
        .await;
    let json = out.assert_ok().json();
    assert_eq!(json["purged"], 1);
    assert_eq!(json["ids"], serde_json::json!([gitlab.to_string()]));
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 3);

    cli.dlq(&["purge", "--all"])
        .await
        .assert_fails_with("--yes");
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 3);

    let out = cli.dlq(&["purge", "--all", "--yes"]).await;
    assert_eq!(out.assert_ok().stdout.trim(), "purged 3 dead letter(s)");
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 0);
    assert_eq!(
        cli.count("SELECT count(*) FROM deliveries WHERE state = 'dead'")
            .await,
        5
    );
}

#[tokio::test]
async fn purge_all_by_default_keeps_replayed_dead_letters() {
    let cli = Cli::new().await;
    let replayed = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    cli.dlq(&["replay", &replayed.to_string()])
        .await
        .assert_ok();

    let out = cli.dlq(&["purge", "--all", "--source", "github"]).await;
    assert_eq!(out.assert_ok().stdout.trim(), "purged 1 dead letter(s)");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM dead_letters")
        .fetch_all(&cli.env.db)
        .await
        .unwrap();
    assert_eq!(left, vec![replayed]);

    let out = cli
        .dlq(&["purge", "--all", "--source", "github", "--include-replayed"])
        .await;
    assert_eq!(out.assert_ok().stdout.trim(), "purged 1 dead letter(s)");
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 0);
}

#[tokio::test]
async fn bad_time_filters_are_refused_with_the_reason() {
    let cli = Cli::new().await;
    let id = seed::dead_letter(&cli.env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    cli.dlq(&["list", "--since", "yesterday"])
        .await
        .assert_fails_with("--since \"yesterday\" is neither an RFC 3339 time");
    cli.dlq(&["replay", "--all", "--until", "2026-13-01T00:00:00Z"])
        .await
        .assert_fails_with("--until \"2026-13-01T00:00:00Z\" is neither");
    cli.dlq(&[
        "list",
        "--since",
        "2026-01-02T00:00:00Z",
        "--until",
        "2026-01-01T00:00:00Z",
    ])
    .await
    .assert_fails_with("--since 2026-01-02T00:00:00Z is after --until 2026-01-01T00:00:00Z");
    cli.dlq(&["purge", "--all", "--since", "soon", "--yes"])
        .await
        .assert_fails_with("--since \"soon\"");
    assert!(cli.replayed_at(id).await.is_none());
    assert_eq!(cli.count("SELECT count(*) FROM dead_letters").await, 1);
}

/// `hookgate events`: the status resource from a shell, with the same JSON as the admin API.
#[tokio::test]
async fn events_list_and_show_tell_what_happened() {
    let cli = Cli::new().await;
    let older = seed::event(
        &cli.env.db,
        "github",
        "gh-old",
        "2026-11-20T10:00:00Z",
        "delivered",
    )
    .await;
    let newer = seed::event(
        &cli.env.db,
        "github",
        "gh-new",
        "2026-11-21T10:00:00Z",
        "pending",
    )
    .await;
    seed::event(
        &cli.env.db,
        "stripe",
        "evt_1",
        "2026-11-22T10:00:00Z",
        "pending",
    )
    .await;
    let listed = cli
        .run(&["events", "list", "--source", "github", "--json"])
        .await;
    let ids: Vec<Value> = listed
        .assert_ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, [newer.to_string(), older.to_string()]);
    let pending = cli
        .run(&[
            "events",
            "list",
            "--status",
            "pending",
            "--until",
            "2026-11-22T00:00:00Z",
        ])
        .await;
    let text = &pending.assert_ok().stdout;
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains(&newer.to_string()) && text.contains("gh-new"),
        "{text}"
    );
    assert!(text.ends_with("1 event(s)\n"), "{text}");

    let dead = seed::dead_letter(&cli.env.db, "github", "ci", "2026-11-23T09:00:00Z").await;
    let event: Uuid = sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE id = $1")
        .bind(dead)
        .fetch_one(&cli.env.db)
        .await
        .unwrap();
    let shown = cli.run(&["events", "show", &event.to_string()]).await;
    let text = &shown.assert_ok().stdout;
    assert!(text.contains("status:       dead_lettered"), "{text}");
    assert!(text.contains("DESTINATION  STATE"), "{text}");
    assert!(text.contains(&format!("dead letter:  {dead}")), "{text}");
    let json = cli
        .run(&["events", "show", &event.to_string(), "--json"])
        .await
        .assert_ok()
        .json();
    assert_eq!(json["deliveries"][0]["state"], "dead");
    assert_eq!(
        json["dead_letters"][0]["href"],
        format!("/v1/dead-letters/{dead}")
    );

    cli.run(&["events", "show", "42"])
        .await
        .assert_fails_with("\"42\" is not an event id (a UUID)");
    cli.run(&["events", "show", &Uuid::new_v4().to_string()])
        .await
        .assert_fails_with("no event");
    cli.run(&["events", "list", "--since", "yesterday"])
        .await
        .assert_fails_with("--since \"yesterday\" is neither");
}
