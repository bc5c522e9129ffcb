//! Enqueueing, acknowledging and reclaiming on the shared (non-blocking) connection.

use super::connection::{Connection, Timeouts};
use super::{Entry, GROUP, QueueError};
use crate::config::RedisUrl;
use redis::streams::StreamAutoClaimReply;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// Short, so a Redis outage costs a webhook at most about this much before it is answered
/// (the event is already committed; the scheduler enqueues it later).
const TIMEOUT: Duration = Duration::from_millis(1000);

#[derive(Clone)]
pub struct Streams {
    conn: Connection,
    prefix: String,
}

impl Streams {
    /// Connects lazily and reconnects on its own, so the receiver starts and keeps accepting
    /// (into Postgres) while Redis is away.
    pub fn new(url: &RedisUrl, prefix: &str) -> Result<Self, QueueError> {
        let timeouts = Timeouts {
            connect: TIMEOUT,
            response: Some(TIMEOUT),
            retries: 1,
        };
        Ok(Self {
            conn: Connection::lazy(url, timeouts)?,
            prefix: prefix.to_string(),
        })
    }

    /// The shared connection, for the queue's other modules.
    pub(super) fn conn(&self) -> Connection {
        self.conn.clone()
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:{<source>}:events`: the braces are a Redis Cluster hash tag, keeping all of a
    /// source's keys in one slot.
    pub fn events_key(&self, source: &str) -> String {
        format!("{}:{{{source}}}:events", self.prefix)
    }

    fn queued_key(&self, source: &str) -> String {
        format!("{}:{{{source}}}:queued", self.prefix)
    }

    /// Adds one entry per event and records them as queued, atomically.
    pub async fn enqueue_many(&self, source: &str, events: &[Uuid]) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let key = self.events_key(source);
        let ids: Vec<String> = events.iter().map(Uuid::to_string).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in &ids {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("event")
                .arg(id)
                .ignore();
        }
        pipe.cmd("SADD")
            .arg(self.queued_key(source))
            .arg(&ids)
            .ignore();
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Of `events`, those without an entry in the stream.
    pub async fn unqueued(&self, source: &str, events: &[Uuid]) -> Result<Vec<Uuid>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = events.iter().map(Uuid::to_string).collect();
        let member: Vec<bool> = redis::cmd("SMISMEMBER")
            .arg(self.queued_key(source))
            .arg(&ids)
            .query_async(&mut self.conn())
            .await?;
        Ok(events
            .iter()
            .zip(member)
            .filter(|(_, queued)| !queued)
            .map(|(id, _)| *id)
            .collect())
    }

    /// Creates the consumer group (and the stream) if missing. It starts at `0`, not `$`:
    /// entries added before any worker ran are work too.
    pub async fn ensure_group(&self, source: &str) -> Result<(), QueueError> {
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.events_key(source))
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut self.conn())
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// The entries are done with: acknowledged, deleted, and their events no longer marked
    /// queued, in one atomic pipeline per source (a source's keys share one cluster slot,
    /// different sources' keys need not). The pipelines go out together; the first error is
    /// returned, and the entries of a source whose pipeline failed stay pending.
    pub async fn finish(&self, entries: &[Entry]) -> Result<(), QueueError> {
        let mut by_source: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for entry in entries {
            by_source.entry(&entry.source).or_default().push(entry);
        }
        let pipelines = by_source
            .into_iter()
            .map(|(source, entries)| self.finish_source(source, entries));
        futures::future::try_join_all(pipelines).await?;
        Ok(())
    }

    async fn finish_source(&self, source: &str, entries: Vec<&Entry>) -> Result<(), QueueError> {
        let key = self.events_key(source);
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XACK").arg(&key).arg(GROUP).arg(&ids).ignore();
        pipe.cmd("XDEL").arg(&key).arg(&ids).ignore();
        let events: Vec<String> = entries
            .iter()
            .filter_map(|e| e.event)
            .map(|e| e.to_string())
            .collect();
        if !events.is_empty() {
            pipe.cmd("SREM")
                .arg(self.queued_key(source))
                .arg(&events)
                .ignore();
        }
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Takes over entries another consumer read but has not finished for `min_idle`.
    /// XAUTOCLAIM scans at most `count * 10` pending entries a call; `cursor` carries on.
    pub async fn reclaim(
        &self,
        source: &str,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<(Vec<Entry>, String), QueueError> {
        let key = self.events_key(source);
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&key)
            .arg(GROUP)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.conn())
            .await?;
        let entries = reply
            .claimed
            .iter()
            .map(|e| Entry::from_stream_id(source, e))
            .collect();
        Ok((entries, reply.next_stream_id))
    }

    /// Entries read by some consumer and not yet finished.
    pub async fn pending(&self, source: &str) -> Result<u64, QueueError> {
        let summary: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(self.events_key(source))
            .arg(GROUP)
            .query_async(&mut self.conn())
            .await?;
        Ok(summary.0)
    }

    /// Appends to a destination's stream (a sink that internal services read themselves).
    pub async fn publish(&self, key: &str, fields: &[(&str, &[u8])]) -> Result<(), QueueError> {
        let _: String = redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg(fields)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), QueueError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}
