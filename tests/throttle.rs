//! Destination throttles (`rate_limit`, `max_in_flight`) held by two worker processes together,
//! against real Postgres, Redis and an HTTP destination: the limit holds, nothing is lost or
//! delivered twice, and waiting spends no attempt.

mod common;

use common::delivery::{self, fast_worker, http_destination, send};
use common::sink::{Answer, Sink};
use common::{Running, TestEnv};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// Source `source` delivering to `sink` as `billing` with these throttle keys.
fn config(source: &str, sink: &Sink, throttle: &str) -> String {
    let billing = format!("{}{throttle}", http_destination("billing", sink, "4s"));
    delivery::config(source, &fast_worker(), 3, &billing)
}

/// Two gateways on one schema and key prefix: two worker processes sharing the throttle.
async fn two_workers(env: &TestEnv, sources: &str) -> (Running, Running) {
    (env.start(sources).await, env.start(sources).await)
}

/// The most arrivals within any window of `width`.
fn most_within(arrivals: &[Instant], width: Duration) -> usize {
    let mut at = arrivals.to_vec();
    at.sort();
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t - at[i] < width).count())
        .max()
        .unwrap_or(0)
}

/// Every delivery delivered once, also after a visibility timeout (a delivery whose lease ran
/// out while it waited for the throttle would come again then), with one attempt made and
/// recorded: waiting for the throttle (here or deferred in Postgres) spent none.
async fn assert_one_attempt_each(env: &TestEnv, source: &str, sink: &Sink, events: i64) {
    delivery::assert_nothing_redelivered(env, source, sink, events as usize).await;
    let mut ids: Vec<String> = (sink.received().iter())
        .map(|r| r.header("webhook-id").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as i64, events, "some delivered twice");
    env.wait_for_count(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 1 AND throttle_slot IS NULL",
        events,
    )
    .await;
    assert_eq!(
        env.count("SELECT count(*) FROM delivery_attempts").await,
        events
    );
}

#[tokio::test]
async fn a_rate_limit_holds_across_workers_and_defers_without_spending_attempts() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let sources = config("ratelimited", &sink, r#"rate_limit = "20/s""#);
    let (gw, _other) = two_workers(&env, &sources).await;
    let events = 40;
    for i in 0..events {
        send(&gw, "ratelimited", &format!("d-{i}"), br#"{"n":1}"#).await;
    }
    let received = sink.wait_for(events, WAIT).await;
    let arrivals: Vec<Instant> = received.iter().map(|r| r.at).collect();
    // Unthrottled, 40 deliveries by 16 workers arrive within a fraction of a second; slots 50 ms
    // apart allow 20 a second (and one more for a window's edge, and one for timer jitter).
    let most = most_within(&arrivals, Duration::from_secs(1));
    assert!(most <= 22, "{most} deliveries within one second at 20/s");
    assert_one_attempt_each(&env, "ratelimited", &sink, events as i64).await;
    // Two seconds of slots: those beyond the lead were deferred in Postgres, not held here.
    let throttled = gw.samples("hookgate_throttled_total", "ratelimited").await;
    assert!(
        throttled["destination=billing,reason=rate_limit"] > 0.0,
        "{throttled:?}"
    );
}

#[tokio::test]
async fn max_in_flight_holds_across_workers_and_defers_without_spending_attempts() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let slow = Answer {
        delay: Duration::from_millis(300),
        ..Answer::status(200)
    };
    sink.set_default(slow);
    let sources = config("bounded", &sink, "max_in_flight = 2");
    let (gw, _other) = two_workers(&env, &sources).await;
    let events = 12;
    for i in 0..events {
        send(&gw, "bounded", &format!("d-{i}"), br#"{"n":1}"#).await;
    }
    let received = sink.wait_for(events, WAIT).await;
    let arrivals: Vec<Instant> = received.iter().map(|r| r.at).collect();
    // A third delivery starts only once one of two answered, 300 ms after it arrived.
    let most = most_within(&arrivals, Duration::from_millis(280));
    assert!(most <= 2, "{most} deliveries in flight at once, bound 2");
    assert_one_attempt_each(&env, "bounded", &sink, events as i64).await;
    let throttled = gw.samples("hookgate_throttled_total", "bounded").await;
    assert!(
        throttled["destination=billing,reason=max_in_flight"] > 0.0,
        "{throttled:?}"
    );
}

#[tokio::test]
async fn the_destination_listing_shows_its_throttle() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let sources = config("shown", &sink, "rate_limit = \"3000/m\"\nmax_in_flight = 4");
    let gw = env
        .start(&format!("{}\n{sources}", common::tokens::admin_tokens()))
        .await;
    let reply = gw
        .admin_get("/v1/destinations", common::tokens::VIEWER)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let billing = &reply.json["items"][0];
    assert_eq!(billing["throttle"]["rate_limit"], "3000/m", "{billing}");
    assert_eq!(billing["throttle"]["max_in_flight"], 4, "{billing}");
}
