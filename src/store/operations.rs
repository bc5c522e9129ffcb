//! Long-running operations (bulk replays and redeliveries): created by the admin API, run by any process's
//! runner under a lease, resumable from their last committed position.

use super::admin_actions::{self, Action, Actor};
use super::dead_letters::{BATCH, DeadLetterFilter, ReplayBatch, replay_batch_in, replay_select};
use super::routes::Routes;
use super::{Keyset, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use sqlx::types::Json;
use std::time::Duration;
use uuid::Uuid;

/// The selection a bulk operation applies to, as stored with the operation: dead letters by
/// `created_at` for a replay, events by `received_at` for a redelivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The events' status (redeliveries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl From<&OperationFilter> for DeadLetterFilter {
    fn from(f: &OperationFilter) -> Self {
        DeadLetterFilter {
            source: f.source.clone(),
            destination: f.destination.clone(),
            since: f.since,
            until: f.until,
            include_replayed: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Operation {
    pub id: Uuid,
    pub kind: String,
    pub filter: Json<OperationFilter>,
    pub state: String,
    pub matched: i64,
    pub replayed: i64,
    pub failed: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub cursor_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub cursor_id: Option<Uuid>,
}

impl Operation {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// What the operation replays: its filter, cut at its start, so dead letters that arrive
    /// while it runs (its own failed replays among them) are not taken in.
    pub fn selection(&self) -> DeadLetterFilter {
        let mut selection = DeadLetterFilter::from(&self.filter.0);
        selection.until = Some(
            selection
                .until
                .map_or(self.created_at, |u| u.min(self.created_at)),
        );
        selection
    }

    pub fn cursor(&self) -> Option<Keyset> {
        Some(Keyset {
            at: self.cursor_at?,
            id: self.cursor_id?,
        })
    }
}

const COLUMNS: &str = "id, kind, filter, state, matched, replayed, failed, error, created_at, \
     updated_at, finished_at, cursor_at, cursor_id";

impl Store {
    /// Records a bulk replay of what `filter` matches now, started by `actor`; a runner picks
    /// it up.
    pub async fn create_replay_operation(
        &self,
        filter: &OperationFilter,
        actor: &Actor,
    ) -> Result<Operation, StoreError> {
        // The database's clock, which also stamps dead letters, marks where the selection ends.
        let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(self.pool())
            .await?;
        let mut selection = DeadLetterFilter::from(filter);
        selection.until = Some(selection.until.map_or(started, |u| u.min(started)));
        let matched = self.count_dead_letters(&selection).await?;
        self.insert_operation(Action::Replay, filter, matched, started, actor)
            .await
    }

    /// Records a bulk redelivery of the events `filter` matches now, started by `actor`; a
    /// runner picks it up.
    pub async fn create_redeliver_operation(
        &self,
        filter: &OperationFilter,
        actor: &Actor,
    ) -> Result<Operation, StoreError> {
        // The database's clock, which also stamps events, marks where the selection ends.
        let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(self.pool())
            .await?;
        let matched = self.count_redeliverable(filter, started).await?;
        self.insert_operation(Action::Redeliver, filter, matched, started, actor)
            .await
    }

    /// Inserts the operation of kind `action` and records it as `actor`'s action in the same
    /// transaction: the record names the operation, which then does the work batch by batch.
    async fn insert_operation(
        &self,
        action: Action,
        filter: &OperationFilter,
        matched: i64,
        started: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<Operation, StoreError> {
        let mut tx = self.pool().begin().await?;
        let operation: Operation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO operations (id, kind, filter, matched, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)
             RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(action.as_str())
        .bind(Json(filter))
        .bind(matched)
        .bind(started)
        .fetch_one(&mut *tx)
        .await?;
        let target = json!({ "filter": filter });
        let outcome = json!({ "operation": operation.id, "matched": matched });
        admin_actions::record(&mut tx, actor, action, target, outcome).await?;
        tx.commit().await?;
        Ok(operation)
    }

    pub async fn operation(&self, id: Uuid) -> Result<Option<Operation>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM operations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Cancels a running operation, recorded as `actor`'s cancel; its runner stops after the
    /// batch in flight (whose row lock the cancel waits for, so the counts recorded are final).
    /// An operation already over is left as it is, and nothing is recorded. `None` when there
    /// is no such operation.
    pub async fn cancel_operation(
        &self,
        id: Uuid,
        actor: &Actor,
    ) -> Result<Option<Operation>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let cancelled: Option<(String, i64, i64)> = sqlx::query_as(
            "UPDATE operations SET state = 'cancelled', finished_at = now(), updated_at = now()
             WHERE id = $1 AND state = 'running'
             RETURNING kind, replayed, failed",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((kind, done, failed)) = cancelled {
            let target = json!({ "operation": id });
            let outcome =
                json!({ "kind": kind, "state": "cancelled", "replayed": done, "failed": failed });
            admin_actions::record(&mut tx, actor, Action::Cancel, target, outcome).await?;
        }
        tx.commit().await?;
        self.operation(id).await
    }

    /// Takes a running operation nobody holds (new, or its runner died) for `lease`.
    pub async fn claim_operation(&self, lease: Duration) -> Result<Option<Operation>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE operations SET lease_until = now() + make_interval(secs => $1)
             WHERE id = (SELECT id FROM operations
                         WHERE state = 'running' AND (lease_until IS NULL OR lease_until < now())
                         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        )))
        .bind(lease.as_secs_f64())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Replays the operation's next batch after `after` and records the progress in the same
    /// transaction, so the count stays exact whatever lands between batches: a cancel (it
    /// waits for this row lock, or this batch sees it and replays nothing) or a crash (the
    /// batch and its count commit together). Renews the lease. `None` once the operation is no
    /// longer running.
    pub async fn replay_operation_batch(
        &self,
        operation: &Operation,
        after: Option<Keyset>,
        routes: &Routes,
        lease: Duration,
    ) -> Result<Option<ReplayBatch>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !lock_running(&mut tx, operation.id).await? {
            return Ok(None);
        }
        let select = replay_select(&operation.selection(), after);
        let batch = replay_batch_in(&mut tx, select, routes, BATCH).await?;
        // Dead letters that can no longer be delivered are skipped, and counted as failed.
        let progress = Progress {
            done: batch.replayed.len(),
            failed: batch.unroutable.len(),
            position: batch.next.or(after),
        };
        record_progress(&mut tx, operation.id, progress, lease).await?;
        tx.commit().await?;
        Ok(Some(batch))
    }

    /// Gives up the lease of a running operation, so any runner may take it over now.
    pub async fn release_operation(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE operations SET lease_until = NULL WHERE id = $1 AND state = 'running'")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends a running operation: `succeeded`, or `failed` with its error.
    pub async fn finish_operation(&self, id: Uuid, error: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE operations
             SET state = CASE WHEN $2::text IS NULL THEN 'succeeded' ELSE 'failed' END,
                 error = $2, finished_at = now(), updated_at = now(), lease_until = NULL,
                 failed = CASE WHEN $2::text IS NULL THEN failed
                               ELSE GREATEST(matched - replayed, 0) END
             WHERE id = $1 AND state = 'running'",
        )
        .bind(id)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Locks the operation's row for the batch's transaction; false when it is no longer running
/// (cancelled): a cancel waits for this lock, or the batch sees it and does nothing.
pub(super) async fn lock_running(tx: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let state: String = sqlx::query_scalar("SELECT state FROM operations WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(state == "running")
}

/// What one batch of an operation did.
pub(super) struct Progress {
    /// Items handled (the `replayed` count).
    pub done: usize,
    /// Items skipped because they can no longer be delivered.
    pub failed: usize,
    /// Where the next batch resumes.
    pub position: Option<Keyset>,
}

/// Adds a batch's counts and position to the operation and renews its lease, in the batch's
/// transaction, so the counts stay exact across a cancel or a crash.
pub(super) async fn record_progress(
    tx: &mut PgConnection,
    id: Uuid,
    progress: Progress,
    lease: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operations
         SET replayed = replayed + $2, cursor_at = $3, cursor_id = $4, updated_at = now(),
             lease_until = now() + make_interval(secs => $5), failed = failed + $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(progress.done as i64)
    .bind(progress.position.map(|c| c.at))
    .bind(progress.position.map(|c| c.id))
    .bind(lease.as_secs_f64())
    .bind(progress.failed as i64)
    .execute(tx)
    .await?;
    Ok(())
}
