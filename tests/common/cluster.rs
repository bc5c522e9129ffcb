//! Redis Cluster for the cluster tests: the local one `scripts/dev test` starts (its seeds in
//! `HOOKGATE_TEST_REDIS_CLUSTER_URL`), shared by tests that each keep to their own key prefix,
//! or a private one a test starts to kill its nodes.

use super::procs::{Process, free_port};
use hookgate::config::RedisUrl;
use redis::cluster_async::ClusterConnection;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a cluster gets to form, or to fail over.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

/// The shared cluster's seed nodes.
pub fn shared_seeds() -> Vec<String> {
    let text = std::env::var("HOOKGATE_TEST_REDIS_CLUSTER_URL").expect(
        "HOOKGATE_TEST_REDIS_CLUSTER_URL names the test cluster's seeds: run tests through scripts/dev test",
    );
    text.split(',').map(|s| s.trim().to_string()).collect()
}

pub async fn connect(seeds: &[String]) -> ClusterConnection {
    redis::cluster::ClusterClient::new(seeds.to_vec())
        .unwrap()
        .get_async_connection()
        .await
        .expect("the Redis Cluster must be reachable: run tests through scripts/dev test")
}

/// One test's keys on a cluster: `<prefix>:*`, deleted when it is dropped.
pub struct ClusterKeys {
    pub seeds: Vec<String>,
    pub conn: ClusterConnection,
    prefix: String,
}

impl ClusterKeys {
    pub async fn new(seeds: Vec<String>, prefix: &str) -> Self {
        Self {
            conn: connect(&seeds).await,
            seeds,
            prefix: prefix.to_string(),
        }
    }

    pub fn url(&self) -> RedisUrl {
        RedisUrl::Cluster(self.seeds.clone())
    }

    /// Every key of the test, from every master.
    pub async fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .unwrap()
    }

    pub async fn len(&self, key: &str) -> usize {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap()
    }

    /// Entries of `key` read by hookgate's group and not acknowledged.
    pub async fn pending(&self, key: &str) -> usize {
        let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(key)
            .arg(hookgate::queue::GROUP)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
        reply.count()
    }

    /// The port of the master that serves `key`.
    pub async fn master_of(&self, key: &str) -> u16 {
        master_of(&mut self.conn.clone(), key).await
    }
}

impl Drop for ClusterKeys {
    fn drop(&mut self) {
        let (seeds, prefix) = (self.seeds.clone(), self.prefix.clone());
        super::clean_up_blocking(async move {
            let Ok(client) = redis::cluster::ClusterClient::new(seeds) else {
                return;
            };
            let Ok(mut conn) = client.get_async_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            for key in keys {
                let _: Result<(), _> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
            }
        });
    }
}

/// The port of the master whose slots hold `key`, from `CLUSTER SLOTS`.
async fn master_of(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> u16 {
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap();
    let ranges: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .unwrap();
    for range in ranges {
        let first: u16 = redis::from_redis_value_ref(&range[0]).unwrap();
        let last: u16 = redis::from_redis_value_ref(&range[1]).unwrap();
        if (first..=last).contains(&slot) {
            let master: Vec<redis::Value> = redis::from_redis_value_ref(&range[2]).unwrap();
            return redis::from_redis_value_ref(&master[1]).unwrap();
        }
    }
    panic!("no master serves slot {slot}");
}

/// A cluster of three masters and three replicas of the test's own: its nodes may be killed.
pub struct PrivateCluster {
    pub seeds: Vec<String>,
    /// Port -> node.
    nodes: HashMap<u16, Process>,
}

impl PrivateCluster {
    /// Starts six nodes with their files in `dir`, joins them and waits until every slot is
    /// served and every replica has caught up with its master.
    pub async fn start(dir: &Path) -> Self {
        let mut nodes = HashMap::new();
        for _ in 0..6 {
            let (port, bus) = (free_port(), free_port());
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut command = Command::new("redis-server");
            command
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-config-file", "nodes.conf"])
                // A master that stops answering is failed over after about a second.
                .args(["--cluster-node-timeout", "1000"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&node_dir);
            let process = Process::spawn(&mut command, &node_dir.join("redis.log"));
            nodes.insert(port, process);
        }
        let seeds: Vec<String> = nodes
            .keys()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect();
        let mut cluster = Self { seeds, nodes };
        for port in cluster.ports() {
            cluster.until(port, "PING", "PONG").await;
        }
        let addresses: Vec<String> = (cluster.ports().iter())
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed");
        assert!(created.status.success(), "{created:?}");
        cluster.until_whole().await;
        cluster
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.keys().copied().collect()
    }

    pub fn url(&self) -> RedisUrl {
        RedisUrl::Cluster(self.seeds.clone())
    }

    /// Kills (SIGKILL) the master that serves `key`, and waits until its replica has taken
    /// over and the cluster serves every slot again.
    pub async fn kill_master_of(&mut self, key: &str) {
        let port = master_of(&mut connect(&self.seeds).await, key).await;
        self.nodes.get_mut(&port).unwrap().kill();
        self.nodes.remove(&port);
        let survivor = self.ports()[0];
        let started = Instant::now();
        loop {
            let client = redis::Client::open(format!("redis://127.0.0.1:{survivor}")).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            if master_of(&mut conn, key).await != port {
                break;
            }
            assert!(
                started.elapsed() < SETTLE_WITHIN,
                "no replica took over from {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.until_whole().await;
    }

    /// Every remaining node says the cluster serves all slots, and no replica is out of touch
    /// with its master.
    async fn until_whole(&mut self) {
        for port in self.ports() {
            self.until(port, "CLUSTER INFO", "cluster_state:ok").await;
        }
        let started = Instant::now();
        'wait: loop {
            assert!(
                started.elapsed() < SETTLE_WITHIN,
                "replicas did not catch up"
            );
            for port in self.ports() {
                let info = self.ask(port, "INFO replication").await.unwrap_or_default();
                if info.contains("role:slave") && !info.contains("master_link_status:up") {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'wait;
                }
            }
            return;
        }
    }

    /// Waits until node `port` answers `command` with text containing `expected`.
    async fn until(&mut self, port: u16, command: &str, expected: &str) {
        let started = Instant::now();
        loop {
            self.nodes
                .get_mut(&port)
                .unwrap()
                .assert_alive("redis-server");
            if self
                .ask(port, command)
                .await
                .is_some_and(|a| a.contains(expected))
            {
                return;
            }
            assert!(
                started.elapsed() < SETTLE_WITHIN,
                "node {port} did not answer {command} with {expected} within {SETTLE_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `command` (words) sent to node `port` alone; `None` if it cannot answer.
    async fn ask(&self, port: u16, command: &str) -> Option<String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let mut words = command.split(' ');
        let mut cmd = redis::cmd(words.next()?);
        cmd.arg(words.collect::<Vec<_>>());
        cmd.query_async::<String>(&mut conn).await.ok()
    }
}
