//! Dead-letter depth alerts: the log, the gauge and the alert webhook, once per change.

mod common;

use common::sink::{Answer, Sink};
use common::{Running, TestEnv, sign};
use serde_json::Value;
use std::time::Duration;

const SECRET: &str = "s3cret";
const TOKEN: &str = "alerts-test-token-0123456789";
/// Depths are checked every 5 s, so a change is announced within about that.
const WAIT: Duration = Duration::from_secs(20);

fn config(alerts: &Sink, destination: &Sink) -> String {
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
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
        dead_letter_alert = 2

          [[sources.destinations]]
          name = "ci"
          url = "{}"
        "#,
        alerts.url, destination.url
    )
}

async fn post(gateway: &Running, n: usize) {
    let body = format!(r#"{{"n":{n}}}"#);
    let headers = sign::github(SECRET, &format!("delivery-{n}"), body.as_bytes());
    let reply = gateway.post("github", &headers, body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

fn notifications(alerts: &Sink) -> Vec<Value> {
    alerts
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn gauge(gateway: &Running) -> String {
    let text = gateway.metrics().await;
    text.lines()
        .find(|l| l.starts_with("hookgate_dead_letter_alert{source=\"github\"}"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn crossing_the_threshold_alerts_once_and_recovering_resolves() {
    let env = TestEnv::new().await;
    let alerts = Sink::start().await;
    let destination = Sink::start().await;
    destination.set_default(Answer::status(500));
    let text = config(&alerts, &destination);
    // Two processes watch the same depths: still one notification per change.
    let first = Running::start(env.config(&text)).await;
    let second = Running::start(env.config(&text)).await;

    post(&first, 1).await;
    destination.wait_for(1, WAIT).await;
    // One dead letter is below the threshold: nothing is announced.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(alerts.received().is_empty(), "{:?}", notifications(&alerts));

    post(&first, 2).await;
    alerts.wait_for(1, WAIT).await;
    let firing = &notifications(&alerts)[0];
    assert_eq!(firing["alert"], "dead_letter_depth");
    assert_eq!(firing["state"], "firing");
    assert_eq!(firing["source"], "github");
    assert_eq!(firing["depth"], 2);
    assert_eq!(firing["threshold"], 2);
    assert!(
        gauge(&first).await.ends_with(" 1"),
        "{}",
        gauge(&first).await
    );

    destination.set_default(Answer::status(200));
    let started = first
        .http
        .post(format!("{}/v1/dead-letters/replay", first.admin))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "source": "github" }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    alerts.wait_for(2, WAIT).await;
    let resolved = &notifications(&alerts)[1];
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["depth"], 0);
    assert!(
        gauge(&first).await.ends_with(" 0"),
        "{}",
        gauge(&first).await
    );

    // Several more rounds of both processes: no repeated announcements.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        notifications(&alerts).len(),
        2,
        "{:?}",
        notifications(&alerts)
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn an_alert_receiver_that_fails_gets_the_alert_again() {
    let env = TestEnv::new().await;
    let alerts = Sink::start().await;
    alerts.script(&[Answer::status(503), Answer::status(500)]);
    let destination = Sink::start().await;
    destination.set_default(Answer::status(500));
    let gateway = Running::start(env.config(&config(&alerts, &destination))).await;

    post(&gateway, 1).await;
    post(&gateway, 2).await;
    let received = alerts.wait_for(3, WAIT).await;
    let bodies: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(bodies.iter().all(|b| b["state"] == "firing"), "{bodies:?}");
    assert!(
        bodies.iter().all(|b| b["at"] == bodies[0]["at"]),
        "one alert, retried: {bodies:?}"
    );
    gateway.stop().await;
}
