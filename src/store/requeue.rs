//! What the scheduler owes the streams: deliveries whose `requeue_at` has come (see migration
//! 0008 for who sets it and why), and the recovery of a source whose Redis lost its data.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// How long after an event is enqueued (at ingest, replay or redelivery) the scheduler checks
/// that it reached its stream. Long enough for the enqueue that follows the commit to have
/// happened, short enough that an event whose XADD failed waits little longer than that.
pub const REQUEUE_GRACE: Duration = Duration::from_secs(10);

/// Pending deliveries marked per statement when a source is recovered: each batch is a short
/// transaction, so workers' claims never wait long on its row locks.
const RECOVERY_BATCH: i64 = 5000;

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
    /// Up to `limit` pending deliveries whose requeue time has come, soonest first.
    pub async fn due_requeues(&self, limit: i64) -> Result<Vec<Requeue>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT d.event_id, d.destination, e.source, d.requeue_at, d.requeue_check
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.state = 'pending' AND d.requeue_at <= now()
             ORDER BY d.requeue_at
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that `rows` are on their streams now: each is cleared unless a worker has
    /// changed it since it was read (a claim or an outcome then decides what is owed).
    pub async fn requeued(&self, rows: &[Requeue]) -> Result<(), StoreError> {
        let events: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
        let destinations: Vec<&str> = rows.iter().map(|r| r.destination.as_str()).collect();
        let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.requeue_at).collect();
        sqlx::query(
            "UPDATE deliveries d SET requeue_at = NULL, requeue_check = false
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS r (event_id, destination, at)
             WHERE d.event_id = r.event_id AND d.destination = r.destination
               AND d.requeue_at = r.at",
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

    /// After `source`'s Redis keys lost their data (or were never seen by this version): every
    /// pending delivery they could have held is marked for the scheduler to check now, then
    /// `epoch` is recorded as the one now in Redis. Leased deliveries are already owed a
    /// requeue when their lease ends. Returns how many were marked. Interrupted, it is run
    /// again from the start, which marks nothing twice that matters: a check only adds what is
    /// missing.
    pub async fn recover_source(&self, source: &str, epoch: &str) -> Result<u64, StoreError> {
        let mut after: (DateTime<Utc>, Uuid) = (DateTime::<Utc>::UNIX_EPOCH, Uuid::nil());
        let mut marked = 0;
        loop {
            // Walks the source's pending deliveries through deliveries_due, resuming at (not
            // after) the last row: a batch may end between two deliveries of one event.
            let (count, rows, last_at, last_id): (i64, i64, Option<DateTime<Utc>>, Option<Uuid>) =
                sqlx::query_as(
                    "WITH batch AS (
                         SELECT d.event_id, d.destination, d.next_attempt_at
                         FROM deliveries d JOIN events e ON e.id = d.event_id
                         WHERE d.state = 'pending' AND e.source = $1
                           AND (d.next_attempt_at, d.event_id) >= ($2, $3)
                         ORDER BY d.next_attempt_at, d.event_id
                         LIMIT $4
                     ), marked AS (
                         UPDATE deliveries d SET requeue_at = now(), requeue_check = true
                         FROM batch b
                         WHERE d.event_id = b.event_id AND d.destination = b.destination
                           AND d.state = 'pending'
                           AND (d.requeue_at IS NULL OR d.requeue_check)
                         RETURNING 1
                     ), last AS (
                         SELECT next_attempt_at, event_id FROM batch
                         ORDER BY next_attempt_at DESC, event_id DESC LIMIT 1
                     )
                     SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM batch),
                            (SELECT next_attempt_at FROM last), (SELECT event_id FROM last)",
                )
                .bind(source)
                .bind(after.0)
                .bind(after.1)
                .bind(RECOVERY_BATCH)
                .fetch_one(&self.pool)
                .await?;
            marked += count as u64;
            match (last_at, last_id) {
                (Some(at), Some(id)) if rows == RECOVERY_BATCH && (at, id) != after => {
                    after = (at, id)
                }
                _ => break,
            }
        }
        sqlx::query(
            "INSERT INTO stream_epochs (source, epoch) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET epoch = $2, changed_at = now()",
        )
        .bind(source)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(marked)
    }
}
