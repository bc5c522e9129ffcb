//! Dead-letter depth alerts: the log, the gauge and the alert webhook, once per change.
//!
//! The gateways of one test binary share one metrics recorder, so each test has a source of
//! its own and reads only that source's series.

mod common;

use common::sink::{Answer, Sink};
use common::{Running, TestEnv, seed, sign};
use serde_json::Value;
use std::time::{Duration, Instant};

const SECRET: &str = "s3cret";
const TOKEN: &str = "alerts-test-token-0123456789";
/// Depths are checked every 5 s, so a change is seen within about that.
const WAIT: Duration = Duration::from_secs(20);
const THRESHOLD: u64 = 2;

fn config(source: &str, alerts: &Sink, destination: &Sink) -> String {
    format!(
        r#"
        alert_webhook_url = "{}"

        [worker]
        schedule_interval = "20ms"

        [retry]
        max_attempts = 1

        [[admin_tokens]]
        name = "oncall"
        token = "{TOKEN}"
        scopes = ["read", "replay"]

        [[sources]]
        name = "{source}"
        provider = "github"
        secrets = ["{SECRET}"]
        dead_letter_alert = {THRESHOLD}

          [[sources.destinations]]
          name = "ci"
          url = "{}"
        "#,
        alerts.url, destination.url
    )
}

async fn post(gateway: &Running, source: &str, n: usize) {
    let body = format!(r#"{{"n":{n}}}"#);
    let headers = sign::github(SECRET, &format!("delivery-{n}"), body.as_bytes());
    let reply = gateway.post(source, &headers, body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

fn notifications(alerts: &Sink) -> Vec<Value> {
    alerts
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// The value of gauge `name` for `source`, once a round has set it.
async fn gauge(gateway: &Running, name: &str, source: &str) -> Option<f64> {
    let series = format!("{name}{{source=\"{source}\"}} ");
    let text = gateway.metrics().await;
    let line = text.lines().find(|l| l.starts_with(&series))?;
    Some(line[series.len()..].parse().unwrap())
}

/// Waits until gauge `name` for `source` reads `value`: a round of observation has seen what
/// the test just set up.
async fn until_gauge(gateway: &Running, name: &str, source: &str, value: f64) {
    let started = Instant::now();
    loop {
        let read = gauge(gateway, name, source).await;
        if read == Some(value) {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "{name}{{source={source:?}}} is {read:?}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn crossing_the_threshold_alerts_once_and_recovering_resolves() {
    const SOURCE: &str = "alerting";
    let env = TestEnv::new().await;
    let alerts = Sink::start().await;
    let destination = Sink::start().await;
    destination.set_default(Answer::status(500));
    let text = config(SOURCE, &alerts, &destination);
    // Two processes watch the same depths: still one notification per change.
    let first = Running::start(env.config(&text)).await;
    let second = Running::start(env.config(&text)).await;

    post(&first, SOURCE, 1).await;
    destination.wait_for(1, WAIT).await;
    // A round has seen the one dead letter, which is below the threshold: nothing announced.
    until_gauge(&first, "hookgate_dead_letter_depth", SOURCE, 1.0).await;
    assert_eq!(
        gauge(&first, "hookgate_dead_letter_alert", SOURCE).await,
        Some(0.0)
    );
    assert!(alerts.received().is_empty(), "{:?}", notifications(&alerts));

    post(&first, SOURCE, 2).await;
    alerts.wait_for(1, WAIT).await;
    let firing = &notifications(&alerts)[0];
    assert_eq!(firing["alert"], "dead_letter_depth");
    assert_eq!(firing["state"], "firing");
    assert_eq!(firing["source"], SOURCE);
    assert_eq!(firing["depth"], 2);
    assert_eq!(firing["threshold"], THRESHOLD);
    until_gauge(&first, "hookgate_dead_letter_alert", SOURCE, 1.0).await;

    destination.set_default(Answer::status(200));
    let started = first
        .http
        .post(format!("{}/v1/dead-letters/replay", first.admin))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "source": SOURCE }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    alerts.wait_for(2, WAIT).await;
    let resolved = &notifications(&alerts)[1];
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["source"], SOURCE);
    assert_eq!(resolved["depth"], 0);
    until_gauge(&first, "hookgate_dead_letter_alert", SOURCE, 0.0).await;

    // More rounds, each one seen to happen: the depth moves below the threshold and back, and
    // neither process announces anything again.
    for round in 1..=3 {
        // Created now: one older than dead_letter_retention could go in a retention pass.
        let now = chrono::Utc::now().to_rfc3339();
        let letter = seed::dead_letter(&env.db, SOURCE, "ci", &now).await;
        until_gauge(&first, "hookgate_dead_letter_depth", SOURCE, 1.0).await;
        sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
            .bind(letter)
            .execute(&env.db)
            .await
            .unwrap();
        until_gauge(&first, "hookgate_dead_letter_depth", SOURCE, 0.0).await;
        assert_eq!(
            notifications(&alerts).len(),
            2,
            "round {round}: {:?}",
            notifications(&alerts)
        );
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn an_alert_receiver_that_fails_gets_the_alert_again() {
    const SOURCE: &str = "retried-alert";
    let env = TestEnv::new().await;
    let alerts = Sink::start().await;
    alerts.script(&[Answer::status(503), Answer::status(500)]);
    let destination = Sink::start().await;
    destination.set_default(Answer::status(500));
    let gateway = Running::start(env.config(&config(SOURCE, &alerts, &destination))).await;

    post(&gateway, SOURCE, 1).await;
    post(&gateway, SOURCE, 2).await;
    let received = alerts.wait_for(3, WAIT).await;
    let bodies: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(
        bodies
            .iter()
            .all(|b| b["state"] == "firing" && b["source"] == SOURCE),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().all(|b| b["at"] == bodies[0]["at"]),
        "one alert, retried: {bodies:?}"
    );
    gateway.stop().await;
}

/// The alert receiver refuses a firing alert until the gateway is stopped; the next process
/// sends it from the outbox, and once it is answered 2xx it is never sent again: one
/// notification per change across the restart, with the same id every time it was tried.
#[tokio::test]
async fn a_notification_still_waiting_at_a_restart_is_sent_by_the_next_process_once() {
    const SOURCE: &str = "restarted-alert";
    let env = TestEnv::new().await;
    let alerts = Sink::start().await;
    alerts.set_default(Answer::status(503));
    let destination = Sink::start().await;
    destination.set_default(Answer::status(500));
    let text = config(SOURCE, &alerts, &destination);
    let gateway = Running::start(env.config(&text)).await;
    post(&gateway, SOURCE, 1).await;
    post(&gateway, SOURCE, 2).await;
    alerts.wait_for(1, WAIT).await;
    gateway.stop().await;
    let refused = alerts.received().len();

    alerts.set_default(Answer::status(200));
    let again = Running::start(env.config(&text)).await;
    alerts.wait_for(refused + 1, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM alert_outbox", 0)
        .await;
    // Past more rounds of alert checks and sends: nothing more.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let sent = notifications(&alerts);
    assert_eq!(sent.len(), refused + 1, "{sent:?}");
    assert!(
        sent.iter()
            .all(|n| n["state"] == "firing" && n["id"] == sent[0]["id"]),
        "{sent:?}"
    );
    let keys: Vec<String> = (alerts.received().iter())
        .map(|r| r.header("idempotency-key").to_string())
        .collect();
    let id = sent[0]["id"].to_string();
    assert!(keys.iter().all(|k| *k == id), "{keys:?}");
    again.stop().await;
}
