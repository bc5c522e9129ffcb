//! The blocking XREADGROUP reader.
//!
//! It has a connection of its own without a response timeout from redis-rs: redis-rs times
//! every command out after 500 ms by default, which would fail every `BLOCK` longer than that,
//! and a blocked read on a shared multiplexed connection would hold up every command queued
//! behind it. Each read is timed here instead, at its block time plus [`READ_MARGIN`]: a read
//! that outlives that is on a connection gone silent (a half-open TCP link, a hung server),
//! which would otherwise stop this worker from reading new work until it restarts.

use super::{Entry, GROUP, QueueError};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, IntoConnectionInfo};
use std::collections::HashMap;
use std::time::Duration;

/// How much longer than its block time a read may take before its connection counts as dead.
const READ_MARGIN: Duration = Duration::from_secs(2);
/// Keepalive probes start after this long without traffic, then go out every
/// [`KEEPALIVE_INTERVAL`]: an idle connection whose peer vanished fails within a minute or so
/// instead of looking open forever.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// A connection whose sent data goes unacknowledged this long fails (`TCP_USER_TIMEOUT`):
/// keepalive only probes idle connections, and retransmissions would go on for 15 minutes.
#[cfg(target_os = "linux")]
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(30);

/// A client whose connections notice a peer that vanished.
pub(super) fn client(url: &str) -> Result<redis::Client, redis::RedisError> {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let tcp = TcpSettings::default().set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let tcp = tcp.set_user_timeout(UNACKNOWLEDGED_LIMIT);
    let info = url.into_connection_info()?.set_tcp_settings(tcp);
    redis::Client::open(info)
}

pub struct GroupReader {
    conn: MultiplexedConnection,
    consumer: String,
    /// Stream key -> source name.
    streams: HashMap<String, String>,
}

impl GroupReader {
    /// `streams` pairs each source with its stream key.
    pub async fn connect(
        url: &str,
        consumer: &str,
        streams: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, QueueError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(None);
        let conn = client(url)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Self {
            conn,
            consumer: consumer.to_string(),
            streams: streams
                .into_iter()
                .map(|(source, key)| (key, source))
                .collect(),
        })
    }

    /// Up to `count` never-delivered entries across all streams, waiting at most `block`.
    /// A read that takes [`READ_MARGIN`] longer fails: drop this reader and connect anew.
    pub async fn read(&mut self, count: usize, block: Duration) -> Result<Vec<Entry>, QueueError> {
        let keys: Vec<&String> = self.streams.keys().collect();
        let limit = block + READ_MARGIN;
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&keys)
            .arg(vec![">"; keys.len()]);
        let read = command.query_async(&mut self.conn);
        let reply: Option<StreamReadReply> = match tokio::time::timeout(limit, read).await {
            Ok(reply) => reply?,
            Err(_) => {
                let silent = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("XREADGROUP did not answer within {limit:?}"),
                );
                return Err(redis::RedisError::from(silent).into());
            }
        };
        let mut entries = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let source = &self.streams[&stream.key];
            entries.extend(stream.ids.iter().map(|e| Entry::from_stream_id(source, e)));
        }
        Ok(entries)
    }
}
