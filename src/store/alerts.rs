//! Dead-letter depths and the alerts on them: shared alert state, so a transition is announced
//! once, and the outbox its notifications wait in until the alert receiver has them.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// One look at a source's dead letters against its alert threshold.
#[derive(Debug, Clone, Copy)]
pub struct AlertObservation {
    /// Open dead letters.
    pub depth: i64,
    pub firing: bool,
    /// Whether this observation changed the recorded state: its caller announces it.
    pub changed: bool,
}

/// What the alert receiver is sent, less the `id` the outbox row gives it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub alert: &'static str,
    pub state: &'static str,
    pub source: String,
    pub depth: i64,
    pub threshold: u64,
    pub at: DateTime<Utc>,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Outgoing {
    pub id: i64,
    /// The notification with its `id`, as sent.
    pub body: serde_json::Value,
    /// Failed sends so far.
    pub attempts: i32,
}

impl Store {
    /// Open dead letters per source, from the maintained counts (see migration 0008).
    pub async fn dead_letter_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as(
                "SELECT source, sum(open)::int8 FROM dead_letter_counts GROUP BY source",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    /// Folds the count deltas into one row per source and destination, so reading the counts
    /// stays cheap. Rows committed meanwhile are left for the next fold.
    pub async fn fold_dead_letter_counts(&self) -> Result<(), StoreError> {
        sqlx::query(
            "WITH folded AS (DELETE FROM dead_letter_counts RETURNING *)
             INSERT INTO dead_letter_counts
                 SELECT source, destination, sum(open) FROM folded
                 GROUP BY source, destination HAVING sum(open) <> 0",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Compares `source`'s open dead letters with `threshold` and records whether its alert
    /// fires; `changed` only for the caller that changed it (a source seen for the first time
    /// counts as a change only when firing). With `notify`, a change puts its notification in
    /// the outbox in the same transaction. Callers are serialized per source, and each reads
    /// after the previous one committed, so two observers cannot flip the state back and forth
    /// from counts taken a moment apart.
    pub async fn observe_dead_letter_alert(
        &self,
        source: &str,
        threshold: u64,
        notify: bool,
    ) -> Result<AlertObservation, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookgate:dead_letter_alert:' || $1))")
            .bind(source)
            .execute(&mut *tx)
            .await?;
        let depth: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(open), 0)::int8 FROM dead_letter_counts WHERE source = $1",
        )
        .bind(source)
        .fetch_one(&mut *tx)
        .await?;
        let firing = depth >= i64::try_from(threshold).unwrap_or(i64::MAX);
        // `xmax = 0` marks a fresh insert: a first "not firing" is no news.
        let announce: Option<bool> = sqlx::query_scalar(
            "INSERT INTO dead_letter_alerts (source, firing) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET firing = $2, changed_at = now()
                 WHERE dead_letter_alerts.firing IS DISTINCT FROM $2
             RETURNING (xmax <> 0 OR firing)",
        )
        .bind(source)
        .bind(firing)
        .fetch_optional(&mut *tx)
        .await?;
        let changed = announce == Some(true);
        if changed && notify {
            let notification = Notification {
                alert: "dead_letter_depth",
                state: if firing { "firing" } else { "resolved" },
                source: source.to_string(),
                depth,
                threshold,
                at: Utc::now(),
            };
            sqlx::query(
                "INSERT INTO alert_outbox (id, body)
                 SELECT n, $1 || jsonb_build_object('id', n)
                 FROM nextval('alert_outbox_id_seq') AS n",
            )
            .bind(sqlx::types::Json(&notification))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AlertObservation {
            depth,
            firing,
            changed,
        })
    }

    /// The oldest notification waiting whose next try is due, if any. Notifications go out in
    /// order: a later one is not sent before an earlier one, so a receiver never sees an alert
    /// resolve and then fire again for what was the other way round.
    pub async fn next_notification(&self) -> Result<Option<Outgoing>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, body, attempts FROM alert_outbox
             WHERE id = (SELECT min(id) FROM alert_outbox) AND next_attempt_at <= now()",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The notification is done with: sent, or given up on.
    pub async fn notification_done(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM alert_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The notification failed; it is tried again after `retry_in`.
    pub async fn notification_failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = $2,
                 next_attempt_at = now() + make_interval(secs => $3)
             WHERE id = $1",
        )
        .bind(id)
        .bind(super::deliveries::storable(error).as_ref())
        .bind(retry_in.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
