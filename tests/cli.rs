//! The real binary: configuration checks, migrations, logs and shutdown.

mod common;

use common::{TestEnv, redis_url, sign};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hookgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    command
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_REDIS_URL");
    command
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn check_config_lists_every_problem_and_exits_non_zero() {
    let file = write_config(
        r#"
        database_url = "mysql://nope"
        [[sources]]
        name = "stripe"
        provider = "stripe"
        secrets = ["${HOOKGATE_TEST_UNSET_SECRET}"]
        max_body = "lots"
        "#,
    );
    let out = hookgate()
        .arg("--config")
        .arg(file.path())
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "environment variable HOOKGATE_TEST_UNSET_SECRET is not set",
        "database_url: must start with postgres://",
        "redis_url: required",
        "max_body: \"lots\" is not a size",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
}

#[test]
fn check_config_accepts_the_example_configs() {
    for example in ["examples/hookgate.toml", "examples/demo.toml"] {
        let out = hookgate()
            .args(["--config", example, "check-config"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("is valid"), "{stdout}");
        assert!(
            stdout.contains("database postgres://***@127.0.0.1:5432/hookgate (from the file)"),
            "{stdout}"
        );
    }
    // The production example takes its secrets and both URLs from the environment.
    let out = hookgate()
        .args(["--config", "examples/production.toml", "check-config"])
        .env(
            "HOOKGATE_DATABASE_URL",
            "postgres://hookgate:pw@db.internal/hookgate",
        )
        .env("HOOKGATE_REDIS_URL", "redis://redis.internal:6379")
        .env("HOOKGATE_ADMIN_TOKEN", "0123456789abcdef-oncall")
        .env("HOOKGATE_DASHBOARD_TOKEN", "0123456789abcdef-dashboard")
        .env("GITHUB_WEBHOOK_SECRET", "gh-secret")
        .env("STRIPE_WEBHOOK_SECRET", "whsec_stripe")
        .env(
            "BILLING_SIGNING_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "examples/production.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hookgate()
        .args(["--config", "examples/demo.toml", "check-config"])
        .env("HOOKGATE_REDIS_URL", "redis://redis.internal:6380")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("redis redis://redis.internal:6380 (from HOOKGATE_REDIS_URL)"),
        "{stdout}"
    );
}

/// `hookgate ... | grep -q x`: the reader leaves early; the command ends without a panic.
#[test]
fn an_operator_command_whose_reader_leaves_ends_without_a_panic() {
    let mut child = hookgate()
        .args(["--config", "examples/demo.toml", "check-config"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unreadable_config_is_a_one_line_error() {
    let out = hookgate()
        .args(["--config", "/nonexistent/hookgate.toml", "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("hookgate: cannot read /nonexistent/hookgate.toml"),
        "{stderr}"
    );
}

/// `hookgate migrate` against `database_url`: its stderr.
fn migrate_against(database_url: &str) -> String {
    let file = write_config(&format!(
        r#"
        database_url = "{database_url}"
        redis_url = "{}"
        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["s3cret"]
        "#,
        redis_url()
    ));
    let out = hookgate()
        .arg("--config")
        .arg(file.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A wrong port or database name is one line naming where hookgate tried to connect and what
/// Postgres (or the system) answered, said once; not the pool's "timed out".
#[test]
fn a_postgres_that_cannot_be_reached_is_named_with_its_cause_once() {
    let closed = free_port();
    let stderr = migrate_against(&format!("postgres://postgres@127.0.0.1:{closed}/hookgate"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to Postgres at 127.0.0.1:{closed}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");

    let missing = "hookgate_no_such_database";
    let mut url = common::base_database_url();
    let at = url.rfind('/').unwrap();
    url.replace_range(at + 1.., missing);
    let stderr = migrate_against(&url);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("does not exist").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        stderr.contains(&format!("database \"{missing}\"")),
        "{stderr}"
    );
}

#[tokio::test]
async fn concurrent_migrations_apply_each_migration_once() {
    let env = TestEnv::new().await;
    let file = write_config(&config(&env, free_port(), free_port()));
    let children: Vec<_> = (0..4)
        .map(|_| {
            hookgate()
                .arg("--config")
                .arg(file.path())
                .arg("migrate")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let applied = env.count("SELECT count(*) FROM _sqlx_migrations").await;
    let shipped = std::fs::read_dir("migrations").unwrap().count() as i64;
    assert_eq!(applied, shipped);
}

fn config(env: &TestEnv, port: u16, admin_port: u16) -> String {
    format!(
        r#"
        listen = "127.0.0.1:{port}"
        admin_listen = "127.0.0.1:{admin_port}"
        database_url = "{}"
        redis_url = "{}"
        stream_prefix = "{}"
        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["s3cret"]
        "#,
        env.database_url,
        redis_url(),
        env.prefix
    )
}

/// SIGTERM while a webhook is half-sent: the request still completes and is stored, then the
/// process exits 0. Logs are JSON lines carrying the request id.
#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let env = TestEnv::new().await;
    let port = free_port();
    let file = write_config(&config(&env, port, free_port()));
    let mut child = hookgate()
        .arg("--config")
        .arg(file.path())
        .args(["--log-format", "json", "run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let body = b"{\"half\":1,\"other-half\":2}".to_vec();
    let (first, second) = body.split_at(10);
    let (first, second) = (first.to_vec(), second.to_vec());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(first)).await.unwrap();
    let mut request = http
        .post(format!("{base}/webhooks/github"))
        .header("x-request-id", "req-in-flight")
        .body(reqwest::Body::wrap_stream(tokio_stream(rx)));
    for (k, v) in sign::github("s3cret", "in-flight", &body) {
        request = request.header(k, v);
    }
    let in_flight = tokio::spawn(request.send());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Ok(second)).await.unwrap();
    drop(tx);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);

    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
        (status, logs)
    });
    let (status, logs) = tokio::time::timeout(Duration::from_secs(20), status)
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit {status:?}; logs:\n{logs}");
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
    let stored_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "webhook stored")
        .unwrap_or_else(|| panic!("no JSON 'webhook stored' line in:\n{logs}"));
    assert_eq!(
        stored_line["span"]["request_id"], "req-in-flight",
        "{stored_line}"
    );
    // Logs carry values a person reads, not Rust's Debug forms.
    let started_line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "hookgate started")
        .unwrap_or_else(|| panic!("no JSON 'hookgate started' line in:\n{logs}"));
    assert_eq!(started_line["roles"], "receiver, worker", "{started_line}");
    for debug_form in ["Roles {", "Some(", "New(", "RetryIn("] {
        assert!(!logs.contains(debug_form), "{debug_form} in:\n{logs}");
    }
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
