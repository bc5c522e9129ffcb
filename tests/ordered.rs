//! Ordered destinations (`ordered = true`): one delivery at a time, in the order the events
//! were received, across worker processes; a delivery that dead-letters lets the next go.
//! Against real Postgres, Redis and an HTTP destination.

mod common;

use common::TestEnv;
use common::delivery::{self, fast_worker, http_destination, send};
use common::sink::{Answer, Sink};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn config(source: &str, sink: &Sink, max_attempts: u32) -> String {
    let ledger = format!("{}ordered = true\n", http_destination("ledger", sink, "4s"));
    delivery::config(source, &fast_worker(), max_attempts, &ledger)
}

/// The event id of each request the sink got, in order of arrival.
fn arrival_order(sink: &Sink) -> Vec<String> {
    (sink.received().iter())
        .map(|r| {
            r.header("webhook-id")
                .trim_end_matches("_ledger")
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn an_ordered_destination_gets_one_delivery_at_a_time_in_arrival_order() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    let slow = Answer {
        delay: Duration::from_millis(100),
        ..Answer::status(200)
    };
    sink.set_default(slow);
    let sources = config("ordered", &sink, 3);
    // Two worker processes of eight workers each: sixteen could take the events at once.
    let (gw, _other) = (env.start(&sources).await, env.start(&sources).await);
    let mut sent = Vec::new();
    for i in 0..12 {
        sent.push(send(&gw, "ordered", &format!("d-{i}"), br#"{"n":1}"#).await);
    }
    let received = sink.wait_for(sent.len(), WAIT).await;
    assert_eq!(arrival_order(&sink), sent);
    // One at a time: each arrives after the one before was answered, 100 ms after it arrived.
    for pair in received.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(100),
            "two in flight at once: {gap:?} apart"
        );
    }
    delivery::assert_nothing_redelivered(&env, "ordered", &sink, sent.len()).await;
}

#[tokio::test]
async fn a_dead_lettered_delivery_lets_the_next_one_go() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    // The first event is refused on both its attempts; the rest are accepted.
    sink.script(&[Answer::status(500), Answer::status(500)]);
    let gw = env.start(&config("strict", &sink, 2)).await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(send(&gw, "strict", &format!("d-{i}"), br#"{"n":1}"#).await);
    }
    sink.wait_for(5, WAIT).await;
    let expected = [&sent[0], &sent[0], &sent[1], &sent[2], &sent[3]].map(|s| s.to_string());
    assert_eq!(arrival_order(&sink), expected);
    env.wait_for_count("SELECT count(*) FROM dead_letters", 1)
        .await;
    env.wait_for_count(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        3,
    )
    .await;
}

/// What waits for an ordered destination is not put back a page at a time once the
/// destination has a row (its first failure, a pause) and delivers: each would be parked again
/// by its claim, every tick. The ordered release lets them go one at a time instead.
#[tokio::test]
async fn the_scheduler_leaves_what_waits_for_a_flowing_ordered_destination_to_its_turn() {
    let env = TestEnv::new().await;
    let store = hookgate::store::Store::connect_lazy(&env.database_url, 2).unwrap();
    store.migrate().await.unwrap();
    for _ in 0..3 {
        common::seed::pending_delivery(&env.db, "shop", "ledger").await;
    }
    for sql in [
        "UPDATE deliveries SET requeue_at = 'infinity'",
        "INSERT INTO destinations (source, destination) VALUES ('shop', 'ledger')",
    ] {
        sqlx::query(sql).execute(&env.db).await.unwrap();
    }
    let ordered = ["shop/ledger".to_string()];
    assert_eq!(store.release_waiting(1000, &ordered).await.unwrap(), 0);
    // The same destination, not ordered: all of it goes back.
    assert_eq!(store.release_waiting(1000, &[]).await.unwrap(), 3);
}
