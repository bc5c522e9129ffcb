//! HTTPS destinations and alert receivers against real TLS servers with CAs made in the test,
//! and the `traceparent` every delivery carries.

mod common;

use common::delivery::{self, fast_worker};
use common::sink::{Answer, Sink};
use common::tls::{self, Ca, Files};
use common::{Running, TestEnv, seed};
use std::time::Duration;

/// Every wait of these tests: long enough for a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(30);
const SOURCE: &str = "github";

/// Source [`SOURCE`] with `destinations`, each given `max_attempts`.
fn sources(destinations: &str, max_attempts: u32) -> String {
    delivery::config(SOURCE, &fast_worker(), max_attempts, destinations)
}

/// A destination posting to `sink`, with these extra TOML `settings` (TLS keys).
fn destination(name: &str, sink: &Sink, settings: &str) -> String {
    format!(
        r#"
        [[sources.destinations]]
        name = "{name}"
        url = "{}"
        timeout = "4s"
        {settings}
        "#,
        sink.url
    )
}

/// Once `n` dead letters exist: each one's destination, failure kind and last error, by
/// destination.
async fn dead_letters(env: &TestEnv, n: i64) -> Vec<(String, String, String)> {
    env.wait_for_count("SELECT count(*) FROM dead_letters", n)
        .await;
    sqlx::query_as(
        "SELECT destination, failure_kind, last_error FROM dead_letters ORDER BY destination",
    )
    .fetch_all(&env.db)
    .await
    .unwrap()
}

/// Asserts that `letter` is `destination`'s connection failure whose error starts with `words`
/// and goes on with the cause in parentheses.
fn assert_refused(letter: &(String, String, String), destination: &str, words: &str) {
    let (name, kind, error) = letter;
    assert_eq!((name.as_str(), kind.as_str()), (destination, "connection"));
    assert!(
        error.starts_with(words) && error.contains(" (error sending request: "),
        "{destination}: {error:?} does not start with {words:?}, then the cause"
    );
}

#[tokio::test]
async fn a_private_ca_in_ca_file_is_trusted_and_without_it_the_issuer_is_unknown() {
    let env = TestEnv::new().await;
    let ca = Ca::new("hookgate test CA");
    let sink = Sink::start_tls(tls::server(&ca.issue(&["127.0.0.1"]), None)).await;
    let files = Files::new();
    let ca_file = format!(r#"ca_file = "{}""#, files.write("ca.pem", &ca.pem));
    let destinations = format!(
        "{}{}",
        destination("private", &sink, &ca_file),
        destination("public", &sink, "")
    );
    let gw = env.start(&sources(&destinations, 1)).await;
    let body = br#"{"over":"tls"}"#;
    let id = delivery::send(&gw, SOURCE, "d-tls", body).await;

    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(&received[0].body[..], body);
    assert_eq!(received[0].header("webhook-id"), format!("{id}_private"));
    let letters = dead_letters(&env, 1).await;
    assert_refused(&letters[0], "public", "unknown issuer: ");
    assert_eq!(
        sink.received().len(),
        1,
        "the public roots do not know the CA"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
            .await,
        1
    );
}

#[tokio::test]
async fn each_certificate_failure_is_a_connection_failure_that_says_why() {
    let env = TestEnv::new().await;
    let ca = Ca::new("hookgate test CA");
    let rogue = Ca::new("rogue CA");
    let files = Files::new();
    let ca_file = format!(r#"ca_file = "{}""#, files.write("ca.pem", &ca.pem));
    let unknown = Sink::start_tls(tls::server(&rogue.issue(&["127.0.0.1"]), None)).await;
    let expired = Sink::start_tls(tls::server(
        &ca.issue_within(&["127.0.0.1"], 2020, 2021),
        None,
    ))
    .await;
    let early = Sink::start_tls(tls::server(
        &ca.issue_within(&["127.0.0.1"], 2090, 2091),
        None,
    ))
    .await;
    let misnamed = Sink::start_tls(tls::server(&ca.issue(&["other.invalid"]), None)).await;
    let destinations = format!(
        "{}{}{}{}",
        destination("unknown", &unknown, &ca_file),
        destination("expired", &expired, &ca_file),
        destination("early", &early, &ca_file),
        destination("misnamed", &misnamed, &ca_file),
    );
    let gw = env.start(&sources(&destinations, 1)).await;
    delivery::send(&gw, SOURCE, "d-refused", b"{}").await;

    let letters = dead_letters(&env, 4).await;
    assert_refused(&letters[0], "early", "certificate is not valid yet (");
    assert_refused(&letters[1], "expired", "certificate expired (");
    assert_refused(
        &letters[2],
        "misnamed",
        "certificate is not valid for 127.0.0.1 (",
    );
    assert_refused(&letters[3], "unknown", "unknown issuer: ");
    for sink in [&unknown, &expired, &early, &misnamed] {
        assert!(sink.received().is_empty(), "{} got a request", sink.url);
    }
}

#[tokio::test]
async fn a_destination_that_requires_a_client_certificate_gets_the_configured_one() {
    let env = TestEnv::new().await;
    let ca = Ca::new("hookgate test CA");
    let clients = Ca::new("client CA");
    let stranger = Ca::new("stranger CA");
    let sink = Sink::start_tls(tls::server(&ca.issue(&["127.0.0.1"]), Some(&clients))).await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem);
    let known = clients.issue(&["hookgate.test"]);
    let unknown = stranger.issue(&["hookgate.test"]);
    let with_certificate = |name: &str, leaf: &tls::Leaf| {
        format!(
            r#"ca_file = "{ca_file}"
            client_cert = "{}"
            client_key = "{}""#,
            files.write(&format!("{name}.pem"), &leaf.cert_pem),
            files.write(&format!("{name}.key"), &leaf.key_pem),
        )
    };
    let destinations = format!(
        "{}{}{}",
        destination("anonymous", &sink, &format!(r#"ca_file = "{ca_file}""#)),
        destination("known", &sink, &with_certificate("known", &known)),
        destination("stranger", &sink, &with_certificate("stranger", &unknown)),
    );
    let gw = env.start(&sources(&destinations, 1)).await;
    let id = delivery::send(&gw, SOURCE, "d-mtls", b"{}").await;

    let letters = dead_letters(&env, 2).await;
    assert_refused(
        &letters[0],
        "anonymous",
        "the server requires a client certificate: set client_cert and client_key (",
    );
    assert_refused(
        &letters[1],
        "stranger",
        "the server refused hookgate's client certificate with alert UnknownCA (",
    );
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].header("webhook-id"), format!("{id}_known"));
    assert_eq!(received[0].client_certificate.as_ref(), Some(&known.cert));
}

#[tokio::test]
async fn alerts_reach_an_https_receiver_whose_ca_is_in_alert_ca_file() {
    const ALERTING: &str = "tls-alerts";
    let env = TestEnv::new().await;
    let ca = Ca::new("alert receiver CA");
    let alerts = Sink::start_tls(tls::server(&ca.issue(&["127.0.0.1"]), None)).await;
    let files = Files::new();
    let settings = format!(
        r#"alert_webhook_url = "{}"
        alert_ca_file = "{}""#,
        alerts.url,
        files.write("alert-ca.pem", &ca.pem)
    );
    let config = env.config_with_settings(
        &settings,
        &format!(
            r#"
            [[sources]]
            name = "{ALERTING}"
            provider = "github"
            secrets = ["s"]
            dead_letter_alert = 1
              [[sources.destinations]]
              name = "ci"
              url = "http://127.0.0.1:9/"
            "#
        ),
    );
    let gw = Running::start(config).await;
    // Created now: retention would take an older one away before the alert is raised.
    seed::dead_letter(&env.db, ALERTING, "ci", "now").await;

    let received = alerts.wait_for(1, WAIT).await;
    let alert: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(alert["state"], "firing", "{alert}");
    assert_eq!(alert["source"], ALERTING, "{alert}");
    gw.stop().await;
}

/// The `traceparent` of one request, parsed as W3C Trace Context version 00: trace id and
/// span id.
fn trace_context(received: &common::sink::Received) -> (String, String) {
    let header = received.header("traceparent");
    let parts: Vec<&str> = header.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    assert!(
        parts.len() == 4 && parts[0] == "00" && hex(parts[1], 32) && hex(parts[2], 16),
        "not a W3C traceparent: {header:?}"
    );
    assert_eq!(parts[3], "01", "sampled: {header:?}");
    (parts[1].to_string(), parts[2].to_string())
}

#[tokio::test]
async fn every_attempt_at_every_destination_carries_the_events_trace_and_a_span_of_its_own() {
    let env = TestEnv::new().await;
    let flaky = Sink::start().await;
    flaky.script(&[Answer::status(500)]);
    let steady = Sink::start().await;
    let destinations = format!(
        "{}{}",
        destination("flaky", &flaky, ""),
        destination("steady", &steady, "")
    );
    let gw = env.start(&sources(&destinations, 3)).await;
    let id = delivery::send(&gw, SOURCE, "d-trace", b"{}").await;

    let mut requests = flaky.wait_for(2, WAIT).await;
    requests.extend(steady.wait_for(1, WAIT).await);
    let contexts: Vec<(String, String)> = requests.iter().map(trace_context).collect();
    let trace = uuid::Uuid::parse_str(&id).unwrap().simple().to_string();
    assert!(
        contexts.iter().all(|(t, _)| *t == trace),
        "every trace id is the event's {trace}: {contexts:?}"
    );
    let mut spans: Vec<&str> = contexts.iter().map(|(_, s)| s.as_str()).collect();
    spans.sort();
    spans.dedup();
    assert_eq!(spans.len(), 3, "a span per attempt: {contexts:?}");
}
