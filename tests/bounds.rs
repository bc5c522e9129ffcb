//! Redis stays bounded: destination streams are trimmed to `max_len` without losing anything a
//! consumer group still needs, and consumers long gone leave hookgate's group.

mod common;

use common::TestEnv;
use common::delivery::{self, fast_worker};
use hookgate::queue::stream::Streams;
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const MAX_LEN: u64 = 10;
const ENTRIES: usize = 300;
/// Redis trims approximately, whole nodes of at most 100 entries (`stream-node-max-entries`).
const NODE: u64 = 100;

fn streams(env: &TestEnv) -> Streams {
    Streams::new(&common::redis_url().into(), &env.prefix).unwrap()
}

/// A stream under the test's prefix holding `n` entries; their ids, oldest first.
async fn filled(env: &TestEnv, name: &str, n: usize) -> (String, Vec<String>) {
    let key = format!("{}:dest:{name}", env.prefix);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("n")
            .arg(i)
            .query_async(&mut env.redis.clone())
            .await
            .unwrap();
        ids.push(id);
    }
    (key, ids)
}

async fn create_group(redis: &MultiplexedConnection, key: &str, group: &str) {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .query_async(&mut redis.clone())
        .await
        .unwrap();
}

/// `consumer` of `group` reads up to `count` new entries; their ids.
async fn read(
    redis: &MultiplexedConnection,
    key: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> Vec<String> {
    let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(&mut redis.clone())
        .await
        .unwrap();
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| e.id)
        .collect()
}

async fn ack(redis: &MultiplexedConnection, key: &str, group: &str, ids: &[String]) {
    let _: u64 = redis::cmd("XACK")
        .arg(key)
        .arg(group)
        .arg(ids)
        .query_async(&mut redis.clone())
        .await
        .unwrap();
}

async fn len(redis: &MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut redis.clone())
        .await
        .unwrap()
}

/// How many entries from `from` on are still in the stream.
async fn count_from(redis: &MultiplexedConnection, key: &str, from: &str) -> usize {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg(from)
        .arg("+")
        .query_async(&mut redis.clone())
        .await
        .unwrap();
    reply.ids.len()
}

#[tokio::test]
async fn a_stream_its_group_has_read_and_acked_is_trimmed_to_about_max_len() {
    let env = TestEnv::new().await;
    let (key, _) = filled(&env, "acked", ENTRIES).await;
    create_group(&env.redis, &key, "billing").await;
    let read = read(&env.redis, &key, "billing", "c1", ENTRIES).await;
    ack(&env.redis, &key, "billing", &read).await;

    let trimmed = streams(&env).trim_destination(&key, MAX_LEN).await.unwrap();

    let left = len(&env.redis, &key).await;
    assert!(
        (MAX_LEN..=MAX_LEN + NODE).contains(&left),
        "{left} entries left"
    );
    assert_eq!(trimmed.held_by, None);
}

#[tokio::test]
async fn a_stream_without_groups_is_trimmed_to_about_max_len() {
    let env = TestEnv::new().await;
    let (key, _) = filled(&env, "unread", ENTRIES).await;

    streams(&env).trim_destination(&key, MAX_LEN).await.unwrap();

    let left = len(&env.redis, &key).await;
    assert!(
        (MAX_LEN..=MAX_LEN + NODE).contains(&left),
        "{left} entries left"
    );
}

#[tokio::test]
async fn a_group_that_has_read_nothing_holds_every_entry() {
    let env = TestEnv::new().await;
    let (key, _) = filled(&env, "stalled", ENTRIES).await;
    create_group(&env.redis, &key, "done").await;
    let read = read(&env.redis, &key, "done", "c1", ENTRIES).await;
    ack(&env.redis, &key, "done", &read).await;
    create_group(&env.redis, &key, "stalled").await;

    let trimmed = streams(&env).trim_destination(&key, MAX_LEN).await.unwrap();

    assert_eq!(len(&env.redis, &key).await, ENTRIES as u64);
    assert_eq!(trimmed.held_by.as_deref(), Some("stalled"));
}

#[tokio::test]
async fn a_group_with_one_old_pending_entry_holds_everything_from_that_entry_on() {
    let env = TestEnv::new().await;
    let (key, ids) = filled(&env, "pending", ENTRIES).await;
    create_group(&env.redis, &key, "audit").await;
    let read = read(&env.redis, &key, "audit", "c1", ENTRIES).await;
    let stuck = ENTRIES / 2;
    let acked: Vec<String> = read
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != stuck)
        .map(|(_, id)| id.clone())
        .collect();
    ack(&env.redis, &key, "audit", &acked).await;

    let trimmed = streams(&env).trim_destination(&key, MAX_LEN).await.unwrap();

    assert_eq!(
        count_from(&env.redis, &key, &ids[stuck]).await,
        ENTRIES - stuck,
        "the pending entry and every one after it are kept"
    );
    assert!(
        len(&env.redis, &key).await < ENTRIES as u64,
        "what came before the pending entry is trimmed"
    );
    assert_eq!(trimmed.held_by.as_deref(), Some("audit"));
}

/// The value of `name`'s series labelled with this stream and group, if exported.
fn series(metrics: &str, name: &str, key: &str, group: &str) -> Option<f64> {
    let stream = format!("stream=\"{key}\"");
    let group = format!("group=\"{group}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.contains(&stream) && l.contains(&group))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, value)| value.parse().ok())
}

#[tokio::test]
async fn the_running_worker_shows_a_stalled_group_as_lag_and_pending_and_keeps_its_entries() {
    let env = TestEnv::new().await;
    let (key, _) = filled(&env, "gauged", 20).await;
    create_group(&env.redis, &key, "stalled").await;
    read(&env.redis, &key, "stalled", "c1", 3).await;
    let destination = format!(
        r#"
        [[sources.destinations]]
        name = "audit"
        stream = "{key}"
        max_len = 5
        "#
    );
    let gw = env
        .start(&delivery::config("github", &fast_worker(), 3, &destination))
        .await;

    let mut gauges = None;
    for _ in 0..100 {
        let metrics = gw.metrics().await;
        let lag = series(&metrics, "hookgate_destination_stream_lag", &key, "stalled");
        let pending = series(
            &metrics,
            "hookgate_destination_stream_pending",
            &key,
            "stalled",
        );
        if let (Some(lag), Some(pending)) = (lag, pending) {
            gauges = Some((lag, pending));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gauges, Some((17.0, 3.0)));
    assert_eq!(len(&env.redis, &key).await, 20);
    gw.stop().await;
}

async fn consumers(env: &TestEnv, source: &str) -> BTreeSet<String> {
    let infos: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(env.stream_key(source))
        .arg(hookgate::queue::GROUP)
        .query_async(&mut env.redis.clone())
        .await
        .unwrap();
    infos
        .iter()
        .filter_map(|i| redis::from_redis_value_ref(i.get("name")?).ok())
        .collect()
}

/// Adds consumer `name` to hookgate's group on `source`'s stream.
async fn join(env: &TestEnv, source: &str, name: &str) {
    let _: u64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(env.stream_key(source))
        .arg(hookgate::queue::GROUP)
        .arg(name)
        .query_async(&mut env.redis.clone())
        .await
        .unwrap();
}

#[tokio::test]
async fn idle_consumers_with_nothing_pending_leave_the_group_but_not_this_process_or_a_busy_one() {
    let env = TestEnv::new().await;
    let streams = streams(&env);
    streams.ensure_group("github").await.unwrap();
    streams
        .enqueue_many("github", &[uuid::Uuid::new_v4()])
        .await
        .unwrap();
    let key = env.stream_key("github");
    let group = hookgate::queue::GROUP;
    assert_eq!(read(&env.redis, &key, group, "busy", 1).await.len(), 1);
    for name in ["gone", "own"] {
        join(&env, "github", name).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    let removed = streams
        .remove_idle_consumers("github", "own", Duration::from_millis(10))
        .await
        .unwrap();

    assert_eq!(removed, ["gone"]);
    let left = consumers(&env, "github").await;
    assert_eq!(
        left,
        BTreeSet::from(["busy".to_string(), "own".to_string()])
    );
}

#[tokio::test]
async fn consumers_idle_less_than_the_limit_stay() {
    let env = TestEnv::new().await;
    let streams = streams(&env);
    streams.ensure_group("github").await.unwrap();
    join(&env, "github", "recent").await;

    let removed = streams
        .remove_idle_consumers("github", "own", Duration::from_secs(3600))
        .await
        .unwrap();

    assert!(removed.is_empty());
    assert_eq!(
        consumers(&env, "github").await,
        BTreeSet::from(["recent".to_string()])
    );
}

#[tokio::test]
async fn a_groups_lag_is_counted_when_redis_cannot_tell_it() {
    let env = TestEnv::new().await;
    let (key, ids) = filled(&env, "holes", 20).await;
    create_group(&env.redis, &key, "slow").await;
    read(&env.redis, &key, "slow", "c1", 3).await;
    // A deletion after the group's position leaves Redis unable to compute its lag.
    let _: u64 = redis::cmd("XDEL")
        .arg(&key)
        .arg(&ids[10])
        .query_async(&mut env.redis.clone())
        .await
        .unwrap();

    let trimmed = streams(&env).trim_destination(&key, MAX_LEN).await.unwrap();

    let slow = &trimmed.groups[0];
    assert_eq!((slow.lag, slow.pending), (16, 3));
}

#[tokio::test]
async fn the_running_worker_removes_idle_consumers_but_never_its_own() {
    let env = TestEnv::new().await;
    let worker = format!("{}\n        consumer_idle_limit = \"1ms\"", fast_worker());
    let gw = env.start(&delivery::config("github", &worker, 3, "")).await;
    delivery::send(&gw, "github", "d-idle", br#"{"x":1}"#).await;
    env.wait_for_count("SELECT count(*) FROM events WHERE status = 'delivered'", 1)
        .await;
    let own = consumers(&env, "github").await;
    assert_eq!(own.len(), 1, "the worker joined the group: {own:?}");
    join(&env, "github", "gone").await;

    let mut left = consumers(&env, "github").await;
    for _ in 0..300 {
        if !left.contains("gone") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = consumers(&env, "github").await;
    }
    assert_eq!(left, own);
    gw.stop().await;
}
