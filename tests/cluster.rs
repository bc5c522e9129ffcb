//! hookgate on a Redis Cluster: ingest and delivery end to end, sources whose keys live on
//! different masters, and a master failing over to its replica. A command or pipeline naming
//! keys of several slots is refused by the cluster (or by the client before it is sent), so
//! each of these would stall with entries left on the streams if hookgate sent one.

mod common;

use common::cluster::{ClusterKeys, PrivateCluster, shared_seeds};
use common::delivery::{self, fast_worker, http_destination};
use common::sink::Sink;
use common::{Running, TestEnv};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// Source `name` (github, [`delivery::SECRET`]) delivering to `sink` as `billing`.
fn source(name: &str, sink: &Sink) -> String {
    delivery::github_source(name, &http_destination("billing", sink, "4s"))
}

/// Sends `count` webhooks to `source`, delivery ids `<source>-<first>...`; returns the ids of
/// the events, each of which was answered `accepted`.
async fn send(gw: &Running, source: &str, first: usize, count: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for n in first..first + count {
        let body = format!(r#"{{"n":{n}}}"#);
        let delivery = format!("{source}-{n}");
        ids.insert(delivery::send(gw, source, &delivery, body.as_bytes()).await);
    }
    ids
}

/// The events `sink` has received (each delivery's `webhook-id` is `<event>_<destination>`).
fn delivered(sink: &Sink) -> BTreeSet<String> {
    (sink.received().iter())
        .map(|r| {
            r.header("webhook-id")
                .trim_end_matches("_billing")
                .to_string()
        })
        .collect()
}

/// Waits until `sink` has received every one of `events`.
async fn until_delivered(sink: &Sink, events: &BTreeSet<String>, within: Duration) {
    let started = Instant::now();
    loop {
        let missing = events.difference(&delivered(sink)).count();
        if missing == 0 {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{missing} of {} acknowledged events not delivered within {within:?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `source`'s stream holds no entry, read or not: every one was finished.
async fn until_finished(env: &TestEnv, keys: &ClusterKeys, source: &str) {
    let key = env.stream_key(source);
    let started = Instant::now();
    while keys.len(&key).await > 0 || keys.pending(&key).await > 0 {
        assert!(started.elapsed() < WAIT, "{source}'s stream keeps entries");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn webhooks_are_ingested_and_delivered_through_a_cluster() {
    let env = TestEnv::new().await;
    let keys = ClusterKeys::new(shared_seeds(), &env.prefix).await;
    let sink = Sink::start().await;
    let billing = http_destination("billing", &sink, "4s");
    let config = delivery::config("github", &fast_worker(), 3, &billing);
    let gw = Running::start(env.config_on(&keys.url(), &config)).await;

    let events = send(&gw, "github", 0, 5).await;
    until_delivered(&sink, &events, WAIT).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 5)
        .await;
    until_finished(&env, &keys, "github").await;
    assert_eq!(sink.received().len(), 5, "each event delivered once");
    let on_cluster = keys.keys().await;
    assert!(
        on_cluster.contains(&format!("{}:{{github}}:epoch", env.prefix)),
        "the source's keys are on the cluster: {on_cluster:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn sources_on_different_masters_are_each_read_and_finished() {
    let env = TestEnv::new().await;
    let keys = ClusterKeys::new(shared_seeds(), &env.prefix).await;
    // Source names whose hash tags fall on every master of the cluster.
    let mut masters = BTreeSet::new();
    let mut names = Vec::new();
    for n in 0..64 {
        let name = format!("src{n}");
        if masters.insert(keys.master_of(&env.stream_key(&name)).await) {
            names.push(name);
        }
    }
    assert!(
        names.len() >= 3,
        "the cluster has three masters: {masters:?}"
    );
    let sink = Sink::start().await;
    let billing = http_destination("billing", &sink, "4s");
    let mut config = delivery::config(&names[0], &fast_worker(), 3, &billing);
    for name in &names[1..] {
        config += &source(name, &sink);
    }
    let gw = Running::start(env.config_on(&keys.url(), &config)).await;

    let mut events = BTreeSet::new();
    for name in &names {
        events.extend(send(&gw, name, 0, 4).await);
    }
    until_delivered(&sink, &events, WAIT).await;
    for name in &names {
        until_finished(&env, &keys, name).await;
    }
    assert_eq!(
        sink.received().len(),
        events.len(),
        "each event delivered once"
    );
    gw.stop().await;
}

/// Events acknowledged before, while and after the master holding the source's keys is killed
/// and its replica takes over are all delivered: what the replica had not yet received when it
/// took over (replication is asynchronous) is put back from Postgres by the scheduler.
#[tokio::test]
async fn a_master_failing_over_to_its_replica_loses_no_acknowledged_event() {
    let env = TestEnv::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = PrivateCluster::start(dir.path()).await;
    let sink = Sink::start().await;
    let billing = http_destination("billing", &sink, "4s");
    let config = delivery::config("github", &fast_worker(), 10, &billing);
    let gw = Running::start(env.config_on(&cluster.url(), &config)).await;

    let mut events = send(&gw, "github", 0, 10).await;
    until_delivered(&sink, &events, WAIT).await;
    let key = env.stream_key("github");
    let (during, ()) = tokio::join!(send(&gw, "github", 10, 40), cluster.kill_master_of(&key));
    events.extend(during);
    events.extend(send(&gw, "github", 50, 10).await);

    // An entry the replica never got is checked for once its event's requeue time (ingest +
    // 10 s) has come.
    until_delivered(&sink, &events, Duration::from_secs(120)).await;
    assert_eq!(events.len(), 60);
    gw.stop().await;
}
