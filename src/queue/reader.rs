//! The XREADGROUP reader.
//!
//! It has a connection of its own without a response timeout from redis-rs: redis-rs times
//! every command out after 500 ms by default, which would fail every `BLOCK` longer than that,
//! and a blocked read on a shared multiplexed connection would hold up every command queued
//! behind it. Each read is timed here instead, at its block time plus [`READ_MARGIN`]: a read
//! that outlives that is on a connection gone silent (a half-open TCP link, a hung server),
//! which would otherwise stop this worker from reading new work until it restarts.
//!
//! One reader reads several streams in one XREADGROUP only when they share a slot or Redis is a
//! single server: on a cluster each source's stream gets a reader (and a connection) of its own
//! (see [`read_sets`]).

use super::connection::{Connection, Timeouts};
use super::{Entry, GROUP, QueueError};
use crate::config::RedisUrl;
use redis::streams::StreamReadReply;
use std::collections::HashMap;
use std::time::Duration;

/// How much longer than its block time a read may take before its connection counts as dead.
const READ_MARGIN: Duration = Duration::from_secs(2);
/// How long a reader may take to connect.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// The sources whose streams one reader reads together: all of them from a single server,
/// one by one from a cluster, where one XREADGROUP may only name keys of one slot.
pub fn read_sets(url: &RedisUrl, sources: &[String]) -> Vec<Vec<String>> {
    match url {
        RedisUrl::Node(_) => vec![sources.to_vec()],
        RedisUrl::Cluster(_) => sources.iter().map(|s| vec![s.clone()]).collect(),
    }
}

pub struct GroupReader {
    conn: Connection,
    consumer: String,
    /// Stream key -> source name.
    streams: HashMap<String, String>,
}

impl GroupReader {
    /// `streams` pairs each source with its stream key; on a cluster they must share a slot.
    pub async fn connect(
        url: &RedisUrl,
        consumer: &str,
        streams: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, QueueError> {
        let timeouts = Timeouts {
            connect: CONNECT_WITHIN,
            response: None,
            retries: 1,
        };
        Ok(Self {
            conn: Connection::connect(url, timeouts).await?,
            consumer: consumer.to_string(),
            streams: streams
                .into_iter()
                .map(|(source, key)| (key, source))
                .collect(),
        })
    }

    /// Up to `count` never-delivered entries of each stream, waiting up to `block` for one if
    /// there are none (`None`: not waiting). A read that takes [`READ_MARGIN`] longer fails:
    /// drop this reader and connect anew.
    pub async fn read(
        &mut self,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>, QueueError> {
        let keys: Vec<&String> = self.streams.keys().collect();
        let limit = block.unwrap_or_default() + READ_MARGIN;
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            command.arg("BLOCK").arg(block.as_millis() as u64);
        }
        command.arg("STREAMS").arg(&keys).arg(vec![">"; keys.len()]);
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

#[cfg(test)]
mod tests {
    use super::read_sets;
    use crate::config::RedisUrl;

    #[test]
    fn a_cluster_gets_a_reader_per_source_and_a_single_server_one_for_all() {
        let sources = vec!["a".to_string(), "b".to_string()];
        let node = RedisUrl::Node("redis://h".into());
        assert_eq!(read_sets(&node, &sources), vec![sources.clone()]);
        let cluster = RedisUrl::Cluster(vec!["redis://h:7000".into()]);
        assert_eq!(
            read_sets(&cluster, &sources),
            vec![vec!["a".to_string()], vec!["b".to_string()]]
        );
    }
}
