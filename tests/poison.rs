//! No message can trap a worker: whatever a destination answers, whatever Postgres refuses,
//! however the configuration changed and whatever the network does, every delivery ends
//! delivered or dead-lettered, and a worker keeps reading new work.

mod common;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use common::proxy::Proxy;
use common::sink::Sink;
use common::{Running, TestEnv, redis_url, seed, sign};
use hookgate::app::{Gateway, Roles};
use hookgate::store::Store;
use hookgate::store::deliveries::{Attempt, ClaimedEvent, Next};
use hookgate::store::outcomes::Outcome;
use hookgate::store::rules::Rules;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

const SECRET: &str = "s3cret";
const TOKEN: &str = "poison-oncall-token-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// An admin token, a millisecond-scale schedule and source `github` with `destinations`.
fn config(max_attempts: u32, destinations: &str) -> String {
    format!(
        r#"
        [[admin_tokens]]
        name = "oncall"
        token = "{TOKEN}"
        scopes = ["read", "replay"]

        [worker]
        visibility_timeout = "2s"
        schedule_interval = "20ms"
        shutdown_deadline = "1s"

        [retry]
        max_attempts = {max_attempts}
        initial_delay = "50ms"
        multiplier = 1.0
        max_delay = "1s"
        jitter = 0.0

        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
        {destinations}
        "#
    )
}

fn destination(name: &str, url: &str) -> String {
    format!(
        r#"
          [[sources.destinations]]
          name = "{name}"
          url = "{url}"
          timeout = "1s"
        "#
    )
}

/// Posts a signed webhook to `source` and returns its event id.
async fn send(gw: &Running, source: &str, delivery: &str) -> Uuid {
    let reply = gw
        .post(source, &sign::github(SECRET, delivery, b"{}"), b"{}")
        .await;
    assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    reply.json["id"].as_str().unwrap().parse().unwrap()
}

async fn wait_until(env: &TestEnv, sql: &'static str, expected: i64) {
    let started = Instant::now();
    loop {
        let n = env.count(sql).await;
        if n == expected {
            return;
        }
        assert!(started.elapsed() < WAIT, "{sql}: {n}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(failure_kind, attempts, last_status, last_error)` of the only dead letter.
async fn dead_letter(env: &TestEnv) -> (String, i32, Option<i32>, String) {
    sqlx::query_as("SELECT failure_kind, attempts, last_status, last_error FROM dead_letters")
        .fetch_one(&env.db)
        .await
        .unwrap()
}

/// A destination that gives every request the same answer, and counts them.
struct Canned {
    url: String,
    hits: Arc<AtomicUsize>,
}

impl Canned {
    async fn start(status: u16, headers: Vec<(&'static str, String)>, body: &'static [u8]) -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut map = HeaderMap::new();
            for (name, value) in &headers {
                map.insert(*name, HeaderValue::from_str(value).unwrap());
            }
            async move { (StatusCode::from_u16(status).unwrap(), map, body) }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file
}

/// A process of the real binary, killed when dropped: a failing test leaves none behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the real binary to completion.
async fn hookgate(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_REDIS_URL")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .await
        .unwrap()
}

/// A binary 500 page (NUL bytes, invalid UTF-8) is recorded as text Postgres accepts, so the
/// delivery is retried and dead-lettered like any refusal, instead of failing to record and
/// being reclaimed forever.
#[tokio::test]
async fn a_binary_error_body_is_recorded_as_text_and_dead_lettered_normally() {
    let env = TestEnv::new().await;
    let page = Canned::start(500, vec![], b"\x00\x01 proto\xff\xfe\x00 page").await;
    let gw = env
        .start(&config(2, &destination("billing", &page.url)))
        .await;
    send(&gw, "github", "d-binary").await;

    wait_until(&env, "SELECT count(*) FROM dead_letters", 1).await;
    let (kind, attempts, status, error) = dead_letter(&env).await;
    assert_eq!(
        (kind.as_str(), attempts, status),
        ("rejected", 2, Some(500))
    );
    assert_eq!(
        error,
        "HTTP 500 Internal Server Error: \u{FFFD}\u{1} proto\u{FFFD}\u{FFFD}\u{FFFD} page"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts WHERE error LIKE 'HTTP 500%'")
            .await,
        2
    );
    assert_eq!(page.hits(), 2);
}

/// A refusal with a 64 MiB body: the worker reads a few KiB of it, keeps the start as the
/// error, and hangs up rather than downloading the rest.
#[tokio::test]
async fn a_huge_error_body_is_cut_off_after_a_few_kib() {
    const TOTAL: usize = 64 << 20;
    let env = TestEnv::new().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // Answers one request, and reports how much of the body went out before the client left.
    let flood = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buf[..n]);
        }
        let head = format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: {TOTAL}\r\n\r\n");
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < TOTAL && socket.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
        }
        sent
    });
    let gw = env.start(&config(1, &destination("billing", &url))).await;
    send(&gw, "github", "d-huge").await;

    wait_until(&env, "SELECT count(*) FROM dead_letters", 1).await;
    let (kind, _, status, error) = dead_letter(&env).await;
    assert_eq!((kind.as_str(), status), ("rejected", Some(500)));
    assert_eq!(
        error,
        format!("HTTP 500 Internal Server Error: {}", "x".repeat(256))
    );
    let sent = tokio::time::timeout(WAIT, flood)
        .await
        .expect("the worker hung up")
        .unwrap();
    assert!(sent < TOTAL, "the whole body was read");
}

/// A delivery whose attempts were all claimed without an outcome being recorded (here set in
/// SQL; in life a crash, a panic or a record that failed each time) is not claimed again:
/// it becomes a `pipeline` dead letter saying why, and the destination hears nothing more.
#[tokio::test]
async fn a_claim_past_the_attempt_budget_dead_letters_instead_of_delivering() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let sources = config(3, &destination("billing", &sink.url));
    let receiver = Running::start_with_roles(env.config(&sources), Roles::RECEIVER).await;
    let event = send(&receiver, "github", "d-spent").await;
    sqlx::query("UPDATE deliveries SET attempts = max_attempts")
        .execute(&env.db)
        .await
        .unwrap();

    let worker = Gateway::start(env.config(&sources), Roles::WORKER)
        .await
        .unwrap();
    wait_until(&env, "SELECT count(*) FROM dead_letters", 1).await;
    let (kind, attempts, _, error) = dead_letter(&env).await;
    assert_eq!(
        (kind.as_str(), attempts, error.as_str()),
        (
            "pipeline",
            3,
            "attempt budget spent without a recorded outcome"
        )
    );
    wait_until(
        &env,
        "SELECT count(*) FROM events WHERE status = 'dead_lettered'",
        1,
    )
    .await;
    let reply = receiver
        .admin_get(&format!("/v1/events/{event}"), TOKEN)
        .await;
    assert_eq!(reply.json["deliveries"][0]["state"], "dead", "{reply:?}");
    assert!(sink.received().is_empty(), "delivered past its budget");
    worker.shutdown_token().cancel();
    worker.wait().await.unwrap();
}

/// Postgres refuses to record one destination's outcome (a trigger the test installs): after a
/// few tries that delivery becomes a `pipeline` dead letter naming the refusal, its sibling's
/// outcome is recorded, and the entry is finished rather than reclaimed and delivered again.
#[tokio::test]
async fn an_outcome_postgres_refuses_becomes_a_pipeline_dead_letter() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let destinations = destination("cursed", &sink.url) + &destination("fine", &sink.url);
    let gw = env.start(&config(5, &destinations)).await;
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_cursed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.destination = 'cursed' THEN
                 RAISE EXCEPTION 'outcomes of cursed are refused';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_cursed BEFORE INSERT ON delivery_attempts
             FOR EACH ROW EXECUTE FUNCTION refuse_cursed();",
    )
    .execute(&env.db)
    .await
    .unwrap();
    send(&gw, "github", "d-cursed").await;

    wait_until(
        &env,
        "SELECT count(*) FROM events WHERE status = 'dead_lettered'",
        1,
    )
    .await;
    let (destination, kind, error): (String, String, String) =
        sqlx::query_as("SELECT destination, failure_kind, last_error FROM dead_letters")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(
        (destination.as_str(), kind.as_str()),
        ("cursed", "pipeline")
    );
    assert!(
        error.starts_with("the outcome could not be recorded: ")
            && error.contains("outcomes of cursed are refused"),
        "{error}"
    );
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT destination, state FROM deliveries ORDER BY destination")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(
        states,
        [
            ("cursed".into(), "dead".into()),
            ("fine".into(), "delivered".into())
        ]
    );
    // Past the visibility timeout: nothing was left to reclaim and deliver again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(sink.received().len(), 2, "one delivery per destination");
}

/// A `302` is a refusal naming where it pointed: following it would turn the POST into a
/// body-less GET and hand the signature and headers to the redirect's target.
#[tokio::test]
async fn a_redirect_is_a_failed_attempt_naming_its_location_and_is_not_followed() {
    let env = TestEnv::new().await;
    let elsewhere = Sink::start().await;
    let location = format!("{}?token=hunter2", elsewhere.url);
    let redirecting = Canned::start(302, vec![("location", location)], b"").await;
    let gw = env
        .start(&config(1, &destination("billing", &redirecting.url)))
        .await;
    send(&gw, "github", "d-302").await;

    wait_until(&env, "SELECT count(*) FROM dead_letters", 1).await;
    let (kind, _, status, error) = dead_letter(&env).await;
    assert_eq!((kind.as_str(), status), ("rejected", Some(302)));
    assert_eq!(
        error,
        format!(
            "HTTP 302 Found (redirect to {}?***, not followed)",
            elsewhere.url
        )
    );
    assert_eq!(redirecting.hits(), 1);
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
}

/// A destination URL with a password and a token in its query: neither appears in what
/// `check-config` prints, in the worker's log, in the recorded errors, the dead letter, or
/// what the admin API shows.
#[tokio::test]
async fn secrets_in_a_destination_url_never_show() {
    let env = TestEnv::new().await;
    let port = closed_port().await;
    let url = format!("http://user:hunter2@127.0.0.1:{port}/hook?token=t0ps3cret");
    let sources = config(1, &destination("billing", &url));
    let file = config_file(&env.config_text(&sources));
    let hidden = |text: &str| !text.contains("hunter2") && !text.contains("t0ps3cret");

    let checked = hookgate(file.path(), &["check-config"]).await;
    let summary = String::from_utf8(checked.stdout).unwrap();
    assert!(checked.status.success(), "{summary}");
    assert!(
        summary.contains(&format!(
            "billing -> http://user:***@127.0.0.1:{port}/hook?***"
        )),
        "{summary}"
    );
    assert!(hidden(&summary), "{summary}");

    let log = tempfile::NamedTempFile::new().unwrap();
    let worker = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .env_remove("HOOKGATE_DATABASE_URL")
            .env_remove("HOOKGATE_REDIS_URL")
            .env_remove("HOOKGATE_LOG")
            .arg("--config")
            .arg(file.path())
            .arg("work")
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let receiver = Running::start_with_roles(env.config(&sources), Roles::RECEIVER).await;
    let event = send(&receiver, "github", "d-secret").await;
    wait_until(&env, "SELECT count(*) FROM dead_letters", 1).await;
    drop(worker);

    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.contains("delivery failed"), "{logged}");
    assert!(hidden(&logged), "{logged}");
    let (kind, _, _, error) = dead_letter(&env).await;
    assert_eq!(kind, "connection");
    assert!(error.starts_with("error sending request"), "{error}");
    let recorded: Vec<String> = sqlx::query_scalar(
        "SELECT last_error FROM deliveries UNION ALL SELECT error FROM delivery_attempts",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert!(recorded.iter().all(|e| hidden(e)), "{recorded:?}");
    let id: Uuid = sqlx::query_scalar("SELECT id FROM dead_letters")
        .fetch_one(&env.db)
        .await
        .unwrap();
    for path in [
        format!("/v1/events/{event}"),
        format!("/v1/dead-letters/{id}"),
        "/v1/dead-letters".to_string(),
    ] {
        let reply = receiver.admin_get(&path, TOKEN).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(hidden(&reply.json.to_string()), "{path}: {}", reply.json);
    }
}

fn redis_addr() -> SocketAddr {
    let client = redis::Client::open(redis_url()).unwrap();
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => (host.as_str(), *port)
            .to_socket_addrs()
            .unwrap()
            .next()
            .unwrap(),
        other => panic!("tests need Redis over TCP, got {other:?}"),
    }
}

/// The worker's Redis connections go silent without closing (a half-open link): its blocked
/// read gives up after its block time and a margin, and a new connection reads new events.
#[tokio::test]
async fn a_reader_on_a_half_open_connection_reconnects_and_reads_new_events() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let proxy = Proxy::start(redis_addr()).await;
    let sources = config(3, &destination("billing", &sink.url));
    let receiver = Running::start_with_roles(env.config(&sources), Roles::RECEIVER).await;
    let worker = Gateway::start(
        env.config_with(
            &env.database_url,
            &format!("redis://{}", proxy.addr),
            &sources,
        ),
        Roles::WORKER,
    )
    .await
    .unwrap();
    send(&receiver, "github", "d-before").await;
    sink.wait_for(1, WAIT).await;

    // An event may be handed to the read in flight, and lost with its reply: it stays
    // pending until reclaimed. So events keep coming until one arrives through a new read.
    proxy.freeze_open();
    let started = Instant::now();
    for n in 0.. {
        send(&receiver, "github", &format!("d-after-{n}")).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        if sink.received().len() > 1 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "no new event read since the freeze"
        );
    }
    worker.shutdown_token().cancel();
}

/// Destination `old` and source `gitlab` leave the configuration while deliveries to them
/// wait (one not due for an hour): a worker starting with the new configuration dead-letters
/// both at once as `pipeline`, and a replay says they cannot be delivered: `409` from the
/// admin API, a one-line error from the CLI, and a bulk replay counts them as failed.
#[tokio::test]
async fn deliveries_no_longer_configured_are_dead_lettered_at_once_and_not_replayed() {
    let env = TestEnv::new().await;
    let billing = Sink::start().await;
    let old = Sink::start().await;
    let before = config(
        3,
        &(destination("billing", &billing.url) + &destination("old", &old.url)),
    ) + &format!(
        r#"
            [[sources]]
            name = "gitlab"
            provider = "github"
            secrets = ["{SECRET}"]
            {}
            "#,
        destination("ci", &old.url)
    );
    let receiver = Running::start_with_roles(env.config(&before), Roles::RECEIVER).await;
    send(&receiver, "github", "d-removed").await;
    send(&receiver, "gitlab", "d-gone").await;
    receiver.stop().await;
    sqlx::query(
        "UPDATE deliveries SET next_attempt_at = now() + interval '1 hour'
         WHERE destination = 'old'",
    )
    .execute(&env.db)
    .await
    .unwrap();

    let after = config(3, &destination("billing", &billing.url));
    let gw = env.start(&after).await;
    wait_until(
        &env,
        "SELECT count(*) FROM events WHERE status = 'dead_lettered'",
        2,
    )
    .await;
    let dead: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT source, destination, failure_kind, last_error FROM dead_letters
         ORDER BY source",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    let pipeline = |source: &str, destination: &str| {
        (
            source.to_string(),
            destination.to_string(),
            "pipeline".to_string(),
            format!("destination {source}/{destination} is no longer configured"),
        )
    };
    assert_eq!(dead, [pipeline("github", "old"), pipeline("gitlab", "ci")]);
    assert_eq!(billing.wait_for(1, WAIT).await.len(), 1);
    assert!(old.received().is_empty());

    let old_letter: Uuid =
        sqlx::query_scalar("SELECT id FROM dead_letters WHERE destination = 'old'")
            .fetch_one(&env.db)
            .await
            .unwrap();
    let path = format!("/v1/dead-letters/{old_letter}/replay");
    let replay = gw.admin_request(reqwest::Method::POST, &path, TOKEN);
    let reply = common::Reply::from(replay.send().await.unwrap()).await;
    reply.assert_problem(409, "conflict");
    assert_eq!(
        reply.json["detail"],
        format!(
            "dead letter {old_letter} cannot be replayed: destination github/old is no longer configured"
        )
    );

    let file = config_file(&env.config_text(&after));
    let cli = hookgate(file.path(), &["dlq", "replay", &old_letter.to_string()]).await;
    let stderr = String::from_utf8(cli.stderr).unwrap();
    assert!(!cli.status.success());
    assert_eq!(
        stderr,
        format!(
            "hookgate: dead letter {old_letter} cannot be replayed: destination github/old is no \
             longer configured\n"
        )
    );

    let bulk = gw
        .admin_request(reqwest::Method::POST, "/v1/dead-letters/replay", TOKEN)
        .json(&serde_json::json!({"all": true}));
    let started = common::Reply::from(bulk.send().await.unwrap()).await;
    assert_eq!(started.status, 202, "{started:?}");
    let operation = started.json["href"].as_str().unwrap().to_string();
    let deadline = Instant::now() + WAIT;
    let finished = loop {
        let reply = gw.admin_get(&operation, TOKEN).await;
        if reply.json["state"] != "running" {
            break reply.json;
        }
        assert!(Instant::now() < deadline, "still running: {}", reply.json);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (
            &finished["state"],
            &finished["matched"],
            &finished["replayed"],
            &finished["failed"]
        ),
        (
            &serde_json::json!("succeeded"),
            &serde_json::json!(2),
            &serde_json::json!(0),
            &serde_json::json!(2)
        )
    );
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
            .await,
        2
    );
}

/// Two workers record sibling deliveries of one event at the same moment. Both transactions
/// are held at their commit (a deferred trigger waits on an advisory lock the test holds)
/// until both got as far as they can; without the event row lock each settled the event from
/// a snapshot in which the other delivery was still pending, and it stayed pending.
#[tokio::test]
async fn sibling_outcomes_recorded_at_once_settle_the_event() {
    let env = TestEnv::new().await;
    let unused = format!("http://127.0.0.1:{}/", closed_port().await);
    let destinations = destination("a", &unused) + &destination("b", &unused);
    let receiver = env.start_receiver(&config(3, &destinations)).await;
    let event = send(&receiver, "github", "d-siblings").await;
    let store = Store::connect_lazy(&env.database_url, 4).unwrap();
    // One claim per delivery, as two workers would hold them.
    let claim = async |destination: &str| -> ClaimedEvent {
        sqlx::query(
            "UPDATE deliveries SET next_attempt_at = CASE WHEN destination = $1
                 THEN now() - interval '1 second' ELSE now() + interval '1 hour' END",
        )
        .bind(destination)
        .execute(&env.db)
        .await
        .unwrap();
        let mut claims = store
            .claim(&[event], Duration::from_secs(60), &[])
            .await
            .unwrap();
        claims.events.pop().unwrap()
    };
    let (a, b) = (claim("a").await, claim("b").await);
    let delivered = |claim: &ClaimedEvent| {
        let claimed = &claim.deliveries[0];
        vec![Attempt {
            destination: claimed.destination.clone(),
            attempt: claimed.attempt,
            duration: Duration::ZERO,
            status_code: Some(200),
            failure: None,
            next: Next::Delivered,
        }]
    };

    let key = i64::from_le_bytes(Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    let mut holder = env.db.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut *holder)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_advisory_xact_lock_shared({key});
             RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER hold_commit AFTER UPDATE ON deliveries
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit();"
    )))
    .execute(&env.db)
    .await
    .unwrap();

    let release = async {
        let deadline = Instant::now() + WAIT;
        // Both are waiting: at the commit gate, or one of them on the other's event lock.
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
            )
            .bind(&env.schema)
            .fetch_one(&env.db)
            .await
            .unwrap();
            if waiting == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "{waiting} waiting");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *holder)
            .await
            .unwrap();
    };
    let (outcome_a, outcome_b) = (delivered(&a), delivered(&b));
    let outcome_a = [Outcome {
        event: &a,
        attempts: &outcome_a,
    }];
    let outcome_b = [Outcome {
        event: &b,
        attempts: &outcome_b,
    }];
    let rules = Rules::default();
    let (recorded_a, recorded_b, ()) = tokio::join!(
        store.record(&outcome_a, &rules),
        store.record(&outcome_b, &rules),
        release
    );
    recorded_a.unwrap();
    recorded_b.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM events WHERE id = $1")
        .bind(event)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(status, "delivered");
}

/// The admin listings and lookups read their rows through an index on a table large enough
/// for a scan to cost more: EXPLAIN names the index each one uses.
#[tokio::test]
async fn listings_and_lookups_use_their_indexes() {
    let env = TestEnv::new().await;
    Store::connect_lazy(&env.database_url, 1)
        .unwrap()
        .migrate()
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (id, source, external_id, payload, headers, received_at, status)
         SELECT gen_random_uuid(), CASE WHEN n % 1000 = 0 THEN 'rare' ELSE 'github' END,
                'e-' || n, '{}', '[]', now() - n * interval '1 second',
                CASE WHEN n % 1000 = 0 THEN 'pending' ELSE 'delivered' END
         FROM generate_series(1, 20000) n",
    )
    .execute(&env.db)
    .await
    .unwrap();
    seed::dead_letters(&env.db, "github", "ci", 20_000).await;
    seed::dead_letters(&env.db, "rare", "ci", 20).await;
    sqlx::raw_sql("ANALYZE events; ANALYZE dead_letters")
        .execute(&env.db)
        .await
        .unwrap();
    let event: Uuid = sqlx::query_scalar("SELECT event_id FROM dead_letters LIMIT 1")
        .fetch_one(&env.db)
        .await
        .unwrap();

    let events = "SELECT id, source, external_id, received_at, status FROM events WHERE TRUE";
    let letters = "SELECT id, event_id, source, destination, attempts, failure_kind, \
                   last_status, last_error, first_attempt_at, last_attempt_at, created_at, \
                   replayed_at FROM dead_letters WHERE TRUE";
    let cases = [
        (
            format!("{events} AND status = 'pending' ORDER BY received_at DESC, id DESC LIMIT 51"),
            "events_status_received",
        ),
        (
            format!("{events} AND source = 'rare' ORDER BY received_at DESC, id DESC LIMIT 51"),
            "events_source_received",
        ),
        (
            format!(
                "SELECT id FROM dead_letters WHERE event_id = '{event}' ORDER BY created_at, id"
            ),
            "dead_letters_event",
        ),
        (
            format!(
                "{letters} AND replayed_at IS NULL AND source = 'rare' \
                 ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
            "dead_letters_open_source",
        ),
    ];
    for (query, index) in cases {
        let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (FORMAT JSON) {query}"
        )))
        .fetch_one(&env.db)
        .await
        .unwrap();
        assert!(
            plan.to_string()
                .contains(&format!("\"Index Name\":\"{index}\"")),
            "{query}\n{plan:#}"
        );
    }
}
