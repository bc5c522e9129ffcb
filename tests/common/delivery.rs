//! What the delivery tests share: a source on a millisecond-scale schedule, destinations run
//! by the test, sending webhooks to it, and checking that nothing is delivered twice.

use super::sink::Sink;
use super::{Running, TestEnv, sign};
use std::time::Duration;

/// The github-provider secret every delivery test signs with.
pub const SECRET: &str = "s3cret";
/// Standard Webhooks secret the destinations verify hookgate's signature with.
pub const DESTINATION_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The lease of [`fast_worker`]: long enough that no delivery outlives it on a loaded 2-core
/// machine (a lease that runs out is a legitimate redelivery, which these tests would misread
/// as a duplicate: 2 s did, with five builds running), short enough for a test to wait past.
pub const VISIBILITY: Duration = Duration::from_secs(5);

/// A `[worker]` section that leases for [`VISIBILITY`] and looks for due work every 20 ms.
pub fn fast_worker() -> String {
    format!(
        r#"concurrency = 8
        visibility_timeout = "{}ms"
        schedule_interval = "20ms"
        shutdown_deadline = "2s""#,
        VISIBILITY.as_millis()
    )
}

/// Source `source` (provider github, [`SECRET`]) with these `destinations`, this `[worker]`
/// section and `max_attempts`, retried after 100 ms, 200 ms, 400 ms, ... capped at 1 s, without
/// jitter, so retries need no long sleeps.
pub fn config(source: &str, worker: &str, max_attempts: u32, destinations: &str) -> String {
    format!(
        r#"
        [worker]
        {worker}

        [retry]
        max_attempts = {max_attempts}
        initial_delay = "100ms"
        multiplier = 2.0
        max_delay = "1s"
        jitter = 0.0

        [[sources]]
        name = "{source}"
        provider = "github"
        secrets = ["{SECRET}"]
        {destinations}
        "#
    )
}

/// Source `name` (provider github, [`SECRET`]) with `extra` keys or tables after its own.
pub fn github_source(name: &str, extra: &str) -> String {
    format!(
        r#"
        [[sources]]
        name = "{name}"
        provider = "github"
        secrets = ["{SECRET}"]
        {extra}
        "#
    )
}

/// An HTTP destination posting to `sink` with this per-attempt `timeout`, signing with
/// [`DESTINATION_SECRET`] and adding `X-Team: payments`.
pub fn http_destination(name: &str, sink: &Sink, timeout: &str) -> String {
    format!(
        r#"
        [[sources.destinations]]
        name = "{name}"
        url = "{}"
        timeout = "{timeout}"
        secret = "{DESTINATION_SECRET}"
        headers = {{ "X-Team" = "payments" }}
        "#,
        sink.url
    )
}

/// Posts a webhook signed for `source` with delivery id `delivery`; it must be accepted.
/// Returns the event's id.
pub async fn send(gw: &Running, source: &str, delivery: &str, body: &[u8]) -> String {
    let reply = gw
        .post(source, &sign::github(SECRET, delivery, body), body)
        .await;
    assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    reply.json["id"].as_str().unwrap().to_string()
}

/// Waits past the visibility timeout and a reclaim round, then asserts that `sink` got no more
/// than `arrivals` requests and that no entry of `source`'s stream is left pending. A worker
/// that lost an outcome, or never acknowledged an entry, leaves it to be reclaimed after the
/// visibility timeout: a duplicate arrives only then, never within milliseconds.
/// Give the destination a generous timeout (4 s, below the lease) in such tests: an attempt that
/// times out is retried, a legitimate repeat that a loaded machine produced with 1 s.
pub async fn assert_nothing_redelivered(env: &TestEnv, source: &str, sink: &Sink, arrivals: usize) {
    // The reclaimer looks every quarter of the visibility timeout; the rest is for the
    // reclaimed delivery to reach the sink.
    tokio::time::sleep(VISIBILITY + VISIBILITY / 4 + Duration::from_secs(1)).await;
    assert_eq!(
        sink.received().len(),
        arrivals,
        "delivered again after the visibility timeout"
    );
    assert_eq!(
        env.stream_pending(source).await,
        0,
        "stream entries left unacknowledged"
    );
}
