//! The blocking XREADGROUP reader.
//!
//! It has a connection of its own without a response timeout: redis-rs times every command out
//! after 500 ms by default, which would fail every `BLOCK` longer than that, and a blocked read
//! on a shared multiplexed connection would hold up every command queued behind it.

use super::{Entry, GROUP, QueueError};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use std::collections::HashMap;
use std::time::Duration;

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
        let conn = redis::Client::open(url)?
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
    pub async fn read(&mut self, count: usize, block: Duration) -> Result<Vec<Entry>, QueueError> {
        let keys: Vec<&String> = self.streams.keys().collect();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&keys)
            .arg(vec![">"; keys.len()])
            .query_async(&mut self.conn)
            .await?;
        let mut entries = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let source = &self.streams[&stream.key];
            entries.extend(stream.ids.iter().map(|e| Entry::from_stream_id(source, e)));
        }
        Ok(entries)
    }
}
