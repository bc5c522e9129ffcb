//! Redis Streams: the work queue. It may lose data at any time; Postgres is the truth.

pub mod stream;

#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct QueueError(#[from] redis::RedisError);
