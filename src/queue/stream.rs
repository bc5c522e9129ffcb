//! Stream keys and enqueueing.

use super::QueueError;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use uuid::Uuid;

/// Short, so a Redis outage costs a webhook at most about this much before it is answered
/// (the event is already committed; the reconciler enqueues it later).
const TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Clone)]
pub struct Streams {
    conn: ConnectionManager,
    prefix: String,
}

impl Streams {
    /// Connects lazily and reconnects on its own, so the receiver starts and keeps accepting
    /// (into Postgres) while Redis is away.
    pub fn new(url: &str, prefix: &str) -> Result<Self, QueueError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    /// `<prefix>:{<source>}:events`: the braces are a Redis Cluster hash tag, keeping all of a
    /// source's keys in one slot.
    pub fn key(&self, source: &str) -> String {
        format!("{}:{{{source}}}:events", self.prefix)
    }

    pub async fn enqueue(&self, source: &str, event_id: Uuid) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: String = conn
            .xadd(self.key(source), "*", &[("event", event_id.to_string())])
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
