//! What the scheduler owes the streams: deliveries whose `requeue_at` has come (see migration
//! 0008 for who sets it and why), and what a source's Redis may have lost with its data.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// How long after an event is enqueued (at ingest, replay or redelivery) the scheduler checks
/// that it reached its stream. Long enough for the enqueue that follows the commit to have
/// happened, short enough that an event whose XADD failed waits little longer than that.
pub const REQUEUE_GRACE: Duration = Duration::from_secs(10);

/// A delivery whose requeue time has come.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Requeue {
    pub event_id: Uuid,
    pub destination: String,
    pub source: String,
    /// The value read, so that clearing it cannot undo a claim or an outcome since.
    pub requeue_at: DateTime<Utc>,
    /// An entry was added when this was set: only a missing one needs adding.
    pub requeue_check: bool,
}

impl Store {
    /// Up to `limit` pending deliveries of one kind (`check`: see [`Requeue::requeue_check`])
    /// whose requeue time is at least `patience` past, soonest first.
    pub async fn due_requeues(
        &self,
        check: bool,
        patience: Duration,
        limit: i64,
    ) -> Result<Vec<Requeue>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.event_id, d.destination, e.source, d.requeue_at, d.requeue_check
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.state = 'pending' AND d.requeue_check = $1
               AND d.requeue_at <= now() - make_interval(secs => $2)
             ORDER BY d.requeue_at
             LIMIT $3",
        )
        .bind(check)
        .bind(patience.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that `rows` are on their streams now: each is cleared unless a worker has
    /// changed it since it was read (a claim or an outcome then decides what is owed).
    /// A row a worker holds locked is skipped, not waited for: whatever it is doing sets the
    /// row's requeue time itself (or leaves this one, and the row is enqueued once more, which
    /// is harmless), and a scheduler that never waits cannot deadlock with the claims of the
    /// entries it has just added.
    pub async fn requeued(&self, rows: &[Requeue]) -> Result<(), StoreError> {
        let events: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
        let destinations: Vec<&str> = rows.iter().map(|r| r.destination.as_str()).collect();
        let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.requeue_at).collect();
        sqlx::query(
            "WITH free AS (
                 SELECT d.ctid
                 FROM deliveries d
                 JOIN unnest($1::uuid[], $2::text[], $3::timestamptz[])
                     AS r (event_id, destination, at)
                     ON d.event_id = r.event_id AND d.destination = r.destination
                 WHERE d.requeue_at = r.at
                 FOR UPDATE OF d SKIP LOCKED
             )
             UPDATE deliveries d SET requeue_at = NULL, requeue_check = false
             WHERE d.ctid = ANY (ARRAY(SELECT ctid FROM free))",
        )
        .bind(&events)
        .bind(&destinations)
        .bind(&at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The epoch `source`'s Redis keys were last known to carry, if any.
    pub async fn stream_epoch(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT epoch FROM stream_epochs WHERE source = $1")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` events of `source`, after `after` in id order, with a pending delivery
    /// that Postgres believes is on a stream (no requeue time): what a Redis that lost its data
    /// may have lost. The rest of the pending deliveries have a requeue time, at which the
    /// scheduler looks at them anyway.
    pub async fn queued_events(
        &self,
        source: &str,
        after: Uuid,
        limit: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT d.event_id
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.state = 'pending' AND d.requeue_at IS NULL AND d.event_id > $2
               AND e.source = $1
             ORDER BY d.event_id
             LIMIT $3",
        )
        .bind(source)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records `epoch` as the one `source`'s Redis keys carry, once everything they lost is
    /// back on the stream.
    pub async fn record_epoch(&self, source: &str, epoch: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO stream_epochs (source, epoch) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET epoch = $2, changed_at = now()",
        )
        .bind(source)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
