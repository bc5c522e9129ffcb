//! Redis Streams: the work queue. It may lose data at any time; Postgres is the truth.
//!
//! Per source, in one Redis Cluster slot (the `{source}` hash tag):
//! - `<prefix>:{<source>}:events`, the stream: one entry per event to process, field `event`;
//! - `<prefix>:{<source>}:queued`, a set of the event ids that have an entry in the stream;
//! - `<prefix>:{<source>}:epoch`, which tells a Redis that lost its data (see [`epoch`]).
//!
//! Both change together (MULTI): an entry is added with its id, and deleted (not just acked) with
//! it once processed, so the stream holds only unprocessed entries and never needs trimming,
//! and "is this event on the stream?" is one set lookup. A Redis that loses its data loses both,
//! so an empty set after a flush correctly says "nothing is queued".
//!
//! Redis may be one server or a Redis Cluster (see [`connection`]): no command, pipeline or
//! script names the keys of more than one source, so each runs on the node that owns its
//! source's slot.

mod connection;
pub mod epoch;
pub mod progress;
pub mod reader;
pub mod stream;
pub mod throttle;
pub mod trim;

use uuid::Uuid;

/// The consumer group every worker of every process joins.
pub const GROUP: &str = "hookgate";

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct QueueError(#[from] redis::RedisError);

impl QueueError {
    /// The group is gone: Redis restarted without persistence, or was flushed.
    pub fn is_nogroup(&self) -> bool {
        self.0.code() == Some("NOGROUP")
    }
}

/// One stream entry handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub source: String,
    pub id: String,
    /// `None` when the entry's payload is gone (deleted while pending) or unreadable.
    pub event: Option<Uuid>,
}

impl Entry {
    fn from_stream_id(source: &str, entry: &redis::streams::StreamId) -> Self {
        let event = entry
            .get::<String>("event")
            .and_then(|text| Uuid::parse_str(&text).ok());
        Self {
            source: source.to_string(),
            id: entry.id.clone(),
            event,
        }
    }
}
