//! The public edge against hostile clients: silent, slow or half-sent connections, bodies that
//! stall or would pass the memory budget, a flood of idle connections against a small
//! open-file limit, shutdown with such connections open, and a full ingest queue.

mod common;

use common::delivery::{SECRET, github_source};
use common::raw::Raw;
use common::{Reply, Running, TestEnv, sign};
use hookgate::app::Roles;
use hookgate::config::Config;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Longest a test waits for what should happen within a second or two.
const WAIT: Duration = Duration::from_secs(10);

const HALF_HEAD: &[u8] = b"POST /webhooks/github HTTP/1.1\r\nHost: hookgate\r\nX-Hub-Sig";
const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: hookgate\r\n\r\n";

fn config_text(env: &TestEnv, edge: &str, sources: &str) -> String {
    format!("{}\n[edge]\n{edge}\n", env.config_text(sources))
}

async fn receiver(env: &TestEnv, edge: &str, sources: &str) -> Running {
    let text = config_text(env, edge, sources);
    let config = Config::parse("test.toml", &text, &|_| None).unwrap();
    Running::start_with_roles(config, Roles::RECEIVER).await
}

/// The head of a signed webhook to `source` whose body is `body`, framed by Content-Length or,
/// when `chunked`, by chunks.
fn signed_head(source: &str, delivery: &str, body: &[u8], chunked: bool) -> Vec<u8> {
    let framing = match chunked {
        true => "Transfer-Encoding: chunked".to_string(),
        false => format!("Content-Length: {}", body.len()),
    };
    let mut head = format!("POST /webhooks/{source} HTTP/1.1\r\nHost: hookgate\r\n{framing}\r\n");
    for (name, value) in sign::github(SECRET, delivery, body) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A signed `{}` webhook to source `github` of the receiver at `base`, ready to send.
fn signed_post(base: &str, delivery: &str) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new()
        .post(format!("{base}/webhooks/github"))
        .body("{}");
    sign::github(SECRET, delivery, b"{}")
        .into_iter()
        .fold(request, |r, (name, value)| r.header(name, value))
}

fn received(source: &str, outcome: &str, count: u64) -> String {
    format!(
        "hookgate_webhooks_received_total{{source=\"{source}\",outcome=\"{outcome}\",event_type=\"none\"}} {count}\n"
    )
}

/// Nothing, half a head, a head a byte at a time, or half the next head on a kept-alive
/// connection: each is closed once `header_timeout` has passed, without an answer (there is
/// no request to answer). `idle_timeout` is far off, so only the head's deadline can close
/// the kept-alive one.
#[tokio::test]
async fn silent_half_sent_and_dribbling_heads_are_closed_after_header_timeout() {
    let env = TestEnv::new().await;
    let gw = receiver(
        &env,
        "header_timeout = \"1s\"\nidle_timeout = \"60s\"",
        &github_source("github", ""),
    )
    .await;
    let mut silent = Raw::connect(&gw.base).await;
    let mut half = Raw::connect(&gw.base).await;
    half.send(HALF_HEAD).await;
    let mut kept_alive = Raw::connect(&gw.base).await;
    kept_alive.send(HEALTH).await;
    assert_eq!(kept_alive.response().await.status, 200);
    kept_alive.send(HALF_HEAD).await;
    let mut dribbling = Raw::connect(&gw.base).await;
    let dribbled = async {
        for (sent, byte) in HALF_HEAD.iter().enumerate() {
            if let Some(answer) = dribbling.closed_within(Duration::from_millis(200)).await {
                return (sent, answer);
            }
            dribbling.try_send(&[*byte]).await;
        }
        panic!("still open after {} bytes", HALF_HEAD.len());
    };
    let (silent, half, kept_alive, (sent, dribbled)) = tokio::join!(
        silent.closed_within(WAIT),
        half.closed_within(WAIT),
        kept_alive.closed_within(WAIT),
        dribbled
    );
    assert_eq!(silent, Some(vec![]), "silent");
    assert_eq!(half, Some(vec![]), "half a head");
    assert_eq!(kept_alive, Some(vec![]), "half the next head");
    assert!(dribbled.is_empty(), "dribbling: {dribbled:?}");
    assert!(
        sent > 1,
        "the dribbling client was cut, not refused: {sent}"
    );
}

/// A kept-alive connection may idle longer than a head may take, up to `idle_timeout`, and
/// is closed after it.
#[tokio::test]
async fn a_kept_alive_connection_idles_up_to_idle_timeout_then_is_closed() {
    let env = TestEnv::new().await;
    let gw = receiver(
        &env,
        "header_timeout = \"1s\"\nidle_timeout = \"3s\"",
        &github_source("github", ""),
    )
    .await;
    let mut raw = Raw::connect(&gw.base).await;
    raw.send(HEALTH).await;
    assert_eq!(raw.response().await.status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    raw.send(HEALTH).await;
    assert_eq!(raw.response().await.status, 200, "idle past header_timeout");
    assert_eq!(raw.closed_within(WAIT).await, Some(vec![]));
}

/// A body that stops arriving is answered `408` once `body_timeout` has passed since its
/// head, and the connection is closed; nothing is stored.
#[tokio::test]
async fn a_stalled_body_is_answered_408_at_body_timeout_and_its_connection_closed() {
    let env = TestEnv::new().await;
    let gw = receiver(&env, "body_timeout = \"1s\"", &github_source("stalled", "")).await;
    let body = br#"{"action":"opened"}"#;
    let mut raw = Raw::connect(&gw.base).await;
    raw.send(&signed_head("stalled", "d-1", body, false)).await;
    raw.send(&body[..5]).await;
    let answer = tokio::time::timeout(WAIT, raw.response())
        .await
        .expect("the stalled body is answered");
    answer.assert_problem(408, "body-timeout");
    assert_eq!(raw.closed_within(WAIT).await, Some(vec![]));
    assert!(
        gw.metrics()
            .await
            .contains(&received("stalled", "body_timeout", 1))
    );
    assert_eq!(env.count("SELECT count(*) FROM events").await, 0);
}

/// With `ingest_memory` of 64 KiB and a 40 KB body held (its head read, its body not yet
/// sent), a second 40 KB webhook is refused from its Content-Length before its body is sent,
/// and a chunked one as soon as its chunks pass what is left; a small webhook still fits.
#[tokio::test]
async fn webhooks_that_would_pass_ingest_memory_are_refused_before_their_body_is_read() {
    let env = TestEnv::new().await;
    let gw = receiver(
        &env,
        "ingest_memory = \"64KiB\"",
        &github_source("budget", "max_body = \"64KiB\""),
    )
    .await;
    let body = format!(r#"{{"pad":"{}"}}"#, "a".repeat(40_000)).into_bytes();
    let mut first = Raw::connect(&gw.base).await;
    first
        .send(&signed_head("budget", "big-1", &body, false))
        .await;
    let mut second = Raw::connect(&gw.base).await;
    second
        .send(&signed_head("budget", "big-2", &body, false))
        .await;
    // Whichever head is read second is refused.
    let (refused, first_refused) = tokio::time::timeout(WAIT, async {
        tokio::select! {
            answer = first.response() => (answer, true),
            answer = second.response() => (answer, false),
        }
    })
    .await
    .expect("one of the two is refused without its body");
    let held = match first_refused {
        true => &mut second,
        false => &mut first,
    };
    refused.assert_problem(503, "overloaded");
    assert_eq!(refused.header("retry-after"), Some("5"));

    let small = gw
        .post("budget", &sign::github(SECRET, "small", b"{}"), b"{}")
        .await;
    assert_eq!(small.json["status"], "accepted", "{small:?}");

    let chunk = vec![b'a'; 30_000];
    let mut chunked = Raw::connect(&gw.base).await;
    chunked
        .send(&signed_head("budget", "chunked", &chunk, true))
        .await;
    chunked
        .send(&[format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat())
        .await;
    let answer = tokio::time::timeout(WAIT, chunked.response())
        .await
        .expect("the chunked body is refused while streaming");
    answer.assert_problem(503, "overloaded");

    held.send(&body).await;
    assert_eq!(held.response().await.json()["status"], "accepted");
    assert!(
        gw.metrics()
            .await
            .contains(&received("budget", "overloaded", 2))
    );
    assert_eq!(env.count("SELECT count(*) FROM events").await, 2);
}

/// A head too large for the edge's 64 KiB read buffer never reaches the router.
#[tokio::test]
async fn a_head_over_64_kib_is_refused() {
    let env = TestEnv::new().await;
    let gw = receiver(&env, "", &github_source("github", "")).await;
    let mut raw = Raw::connect(&gw.base).await;
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: hookgate\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(70 << 10)
    );
    // The edge may close before reading it all.
    raw.try_send(head.as_bytes()).await;
    let answer = raw.closed_within(WAIT).await.expect("closed");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// With Postgres held (the events table locked), the batcher's flushers stall and
/// `ingest_queue = 1` fills: the next webhook is answered `503` problem+json with
/// `Retry-After` at once, and counted as overloaded.
#[tokio::test]
async fn a_full_ingest_queue_is_answered_503_with_retry_after_and_counted() {
    let env = TestEnv::new().await;
    let gw = receiver(&env, "ingest_queue = 1", &github_source("queued", "")).await;
    let mut lock = env.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    // Nothing can be stored meanwhile, so the first answer (well before the 5 s insert
    // timeout) can only be a refusal.
    let mut waiting = Vec::new();
    let refused = loop {
        assert!(waiting.len() < 40, "no webhook was refused");
        let request = gw
            .http
            .post(format!("{}/webhooks/queued", gw.base))
            .body("{}");
        let delivery = format!("q-{}", waiting.len());
        let request = sign::github(SECRET, &delivery, b"{}")
            .into_iter()
            .fold(request, |r, (name, value)| r.header(name, value));
        let mut sent =
            tokio::spawn(async move { Reply::from(request.send().await.unwrap()).await });
        match tokio::time::timeout(Duration::from_millis(200), &mut sent).await {
            Ok(answer) => break answer.unwrap(),
            Err(_) => waiting.push(sent),
        }
    };
    refused.assert_problem(503, "overloaded");
    assert_eq!(refused.retry_after.as_deref(), Some("5"));
    assert!(
        gw.metrics()
            .await
            .contains(&received("queued", "overloaded", 1))
    );
    lock.rollback().await.unwrap();
}

/// `hookgate receive` as a child process, killed when dropped.
struct Hookgate {
    process: std::process::Child,
    public: String,
    stderr: tempfile::NamedTempFile,
    _config: tempfile::NamedTempFile,
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

impl Hookgate {
    /// Runs the binary with `edge` settings and, when given, an open-file limit (soft and hard).
    fn spawn(env: &TestEnv, edge: &str, open_files: Option<u64>) -> Self {
        let (public, admin) = (free_port(), free_port());
        let text = config_text(env, edge, &github_source("github", ""))
            .replace(
                "admin_listen = \"127.0.0.1:0\"",
                &format!("admin_listen = \"127.0.0.1:{admin}\""),
            )
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{public}\""),
            );
        let mut config = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut config, text.as_bytes()).unwrap();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"));
        command
            .arg("--config")
            .arg(config.path())
            .arg("receive")
            .stderr(stderr.reopen().unwrap());
        if let Some(limit) = open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the closure only makes the setrlimit system call,
            // which is async-signal-safe, and allocates nothing.
            unsafe {
                command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, limit, limit));
            }
        }
        Self {
            process: command.spawn().unwrap(),
            public: format!("http://127.0.0.1:{public}"),
            stderr,
            _config: config,
        }
    }

    async fn ready(&self) {
        let started = Instant::now();
        let http = reqwest::Client::new();
        while http
            .get(format!("{}/healthz", self.public))
            .send()
            .await
            .is_err()
        {
            assert!(started.elapsed() < WAIT, "hookgate did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn terminate(&self) {
        let pid = self.process.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.process.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap()
    }
}

impl Drop for Hookgate {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Under an open-file limit of 1,024, 1,100 connections that are silent or stop halfway
/// through their head: the receiver holds at most `max_connections` of them, each for
/// `header_timeout`, and a signed webhook sent after them all is stored and answered `200`
/// within that timeout (and a margin). No accept fails for want of files.
#[tokio::test]
async fn a_thousand_slow_clients_cannot_keep_a_webhook_out_of_a_receiver_with_1024_files() {
    // This test process holds the 1,100 connections.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let env = TestEnv::new().await;
    let header_timeout = Duration::from_secs(2);
    let hookgate = Hookgate::spawn(
        &env,
        "header_timeout = \"2s\"\nmax_connections = 700",
        Some(1024),
    );
    hookgate.ready().await;
    let mut slow = Vec::new();
    for n in 0..1100 {
        let mut raw = Raw::connect(&hookgate.public).await;
        if n % 2 == 1 {
            raw.send(HALF_HEAD).await;
        }
        slow.push(raw);
    }

    let started = Instant::now();
    let reply = tokio::time::timeout(
        WAIT,
        signed_post(&hookgate.public, "after-the-crowd").send(),
    )
    .await
    .expect("the webhook is answered")
    .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(
        started.elapsed() < header_timeout + Duration::from_secs(3),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
    let stderr = hookgate.stderr();
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    drop(slow);
}

/// A `max_connections` set in the config (here 4,096) that cannot fit 1,024 open files beside
/// the reserve: the process says so in one line and exits non-zero instead of failing accepts
/// later.
#[tokio::test]
async fn a_receiver_refuses_to_start_when_max_connections_cannot_fit_its_open_file_limit() {
    let env = TestEnv::new().await;
    let mut hookgate = Hookgate::spawn(&env, "max_connections = 4096", Some(1024));
    let status = hookgate.exited_within(WAIT).await.expect("hookgate exits");
    assert!(!status.success());
    let stderr = hookgate.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("hookgate: 4096 public connections (edge.max_connections)")
            && stderr.contains("may open only 1024"),
        "{stderr}"
    );
}

/// Without `max_connections` a host whose limit is below the default still starts: the cap is
/// what fits, and the log says so.
#[tokio::test]
async fn without_max_connections_a_low_open_file_limit_lowers_the_cap_and_says_so() {
    let env = TestEnv::new().await;
    let hookgate = Hookgate::spawn(&env, "", Some(1024));
    hookgate.ready().await;
    let reply = signed_post(&hookgate.public, "capped")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let stderr = hookgate.stderr();
    assert!(
        stderr.contains("fewer public connections than the default 4096"),
        "{stderr}"
    );
}

/// SIGTERM with connections that owe nobody an answer (silent, half a head, idle after a
/// response, half their next head) and one request being handled (its head read, its body
/// half sent): the first are closed at once, far before their timeouts; the request is let
/// finish, and then the process exits without waiting out the 30 s drain.
#[tokio::test]
async fn sigterm_closes_idle_and_half_sent_connections_at_once_and_lets_a_request_finish() {
    let env = TestEnv::new().await;
    let mut hookgate = Hookgate::spawn(
        &env,
        "header_timeout = \"60s\"\nidle_timeout = \"60s\"",
        None,
    );
    hookgate.ready().await;
    let mut silent = Raw::connect(&hookgate.public).await;
    let mut half = Raw::connect(&hookgate.public).await;
    half.send(HALF_HEAD).await;
    let mut idle = Raw::connect(&hookgate.public).await;
    idle.send(HEALTH).await;
    assert_eq!(idle.response().await.status, 200);
    let mut half_next = Raw::connect(&hookgate.public).await;
    half_next.send(HEALTH).await;
    assert_eq!(half_next.response().await.status, 200);
    half_next.send(HALF_HEAD).await;

    let body = br#"{"action":"in flight"}"#;
    let mut in_flight = Raw::connect(&hookgate.public).await;
    let mut head = signed_head("github", "in-flight", body, false);
    // `100 Continue` comes once the handler reads the body: the request is being handled.
    let expect = b"Expect: 100-continue\r\n\r\n";
    head.truncate(head.len() - 2);
    head.extend_from_slice(expect);
    in_flight.send(&head).await;
    assert_eq!(in_flight.response().await.status, 100);
    in_flight.send(&body[..6]).await;

    hookgate.terminate();
    let (silent, half, idle, half_next) = tokio::join!(
        silent.closed_within(WAIT),
        half.closed_within(WAIT),
        idle.closed_within(WAIT),
        half_next.closed_within(WAIT),
    );
    assert_eq!(silent, Some(vec![]), "silent");
    assert_eq!(half, Some(vec![]), "half a head");
    assert_eq!(idle, Some(vec![]), "idle");
    assert_eq!(half_next, Some(vec![]), "half the next head");

    in_flight.send(&body[6..]).await;
    assert_eq!(in_flight.response().await.json()["status"], "accepted");
    let status = hookgate
        .exited_within(Duration::from_secs(5))
        .await
        .expect("exits without waiting out the drain");
    assert!(status.success(), "{status:?}");
    assert_eq!(env.count("SELECT count(*) FROM events").await, 1);
}
