//! The queue's one connection type, to a single Redis server or to a Redis Cluster.
//!
//! Every command the queue sends names keys of one source only, all in that source's slot
//! (the `{source}` hash tag), so the same commands and pipelines run on both: the cluster
//! connection routes each to the node that owns its slot, follows `MOVED` and `ASK`, and
//! learns the new owners after a failover. A pipeline whose commands span slots is refused
//! by the cluster client before it is sent.

use crate::config::RedisUrl;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};
use std::time::Duration;

/// Keepalive probes start after this long without traffic, then go out every
/// [`KEEPALIVE_INTERVAL`]: an idle connection whose peer vanished fails within a minute or so
/// instead of looking open forever.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// A connection whose sent data goes unacknowledged this long fails (`TCP_USER_TIMEOUT`):
/// keepalive only probes idle connections, and retransmissions would go on for 15 minutes.
#[cfg(target_os = "linux")]
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(30);

/// TCP settings under which a connection notices a peer that vanished: the connection is
/// then dropped and replaced (a response timeout alone does not make it reconnect).
fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let tcp = TcpSettings::default().set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let tcp = tcp.set_user_timeout(UNACKNOWLEDGED_LIMIT);
    tcp
}

/// How long connecting and each command may take, and how often a failed command is retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub connect: Duration,
    /// `None` for a connection that blocks in reads (see [`super::reader`]).
    pub response: Option<Duration>,
    pub retries: usize,
}

#[derive(Clone)]
pub(super) enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// A connection that is made on first use, and remade whenever it breaks, so a process
    /// starts (and a receiver keeps accepting into Postgres) while Redis is away.
    pub fn lazy(url: &RedisUrl, timeouts: Timeouts) -> RedisResult<Self> {
        Ok(match url {
            RedisUrl::Node(url) => {
                let client = node_client(url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(timeouts.response)
                    .set_number_of_retries(timeouts.retries);
                Self::Node(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            RedisUrl::Cluster(seeds) => {
                let (client, config) = cluster_client(seeds, timeouts)?;
                Self::Cluster(client.get_pending_async_connection_with_config(config))
            }
        })
    }

    /// A connection made now: an error says Redis cannot be reached at the moment.
    pub async fn connect(url: &RedisUrl, timeouts: Timeouts) -> RedisResult<Self> {
        Ok(match url {
            RedisUrl::Node(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(timeouts.response)
                    .set_number_of_retries(timeouts.retries);
                Self::Node(ConnectionManager::new_with_config(node_client(url)?, config).await?)
            }
            RedisUrl::Cluster(seeds) => {
                let (client, config) = cluster_client(seeds, timeouts)?;
                Self::Cluster(client.get_async_connection_with_config(config).await?)
            }
        })
    }
}

fn node_client(url: &str) -> RedisResult<redis::Client> {
    let info = url.into_connection_info()?.set_tcp_settings(tcp_settings());
    redis::Client::open(info)
}

fn cluster_client(
    seeds: &[String],
    timeouts: Timeouts,
) -> RedisResult<(ClusterClient, ClusterConfig)> {
    let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
        .tcp_settings(tcp_settings())
        .connection_timeout(timeouts.connect)
        .retries(timeouts.retries as u32);
    let mut config = ClusterConfig::new().set_connection_timeout(timeouts.connect);
    if let Some(response) = timeouts.response {
        // Per attempt, and for the whole command with its retries and redirections.
        builder = builder.response_timeout(response);
        config = config.set_response_timeout(response);
    }
    Ok((builder.build()?, config))
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
