//! Shared alert state, so a transition is announced by exactly one process.

use super::{Store, StoreError};

/// One look at a source's dead letters against its alert threshold.
#[derive(Debug, Clone, Copy)]
pub struct AlertObservation {
    /// Open dead letters.
    pub depth: i64,
    pub firing: bool,
    /// Whether this observation changed the recorded state: its caller announces it.
    pub changed: bool,
}

impl Store {
    /// Counts `source`'s open dead letters and records whether its alert fires (`threshold`
    /// or more); `changed` only for the caller that changed it (a source seen for the first
    /// time counts as a change only when firing). Callers are
    /// serialized per source, and each counts after the previous one committed, so two
    /// workers cannot flip the state back and forth from counts taken a moment apart.
    pub async fn observe_dead_letter_alert(
        &self,
        source: &str,
        threshold: u64,
    ) -> Result<AlertObservation, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hookgate:dead_letter_alert:' || $1))")
            .bind(source)
            .execute(&mut *tx)
            .await?;
        let depth: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dead_letters WHERE source = $1 AND replayed_at IS NULL",
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
        tx.commit().await?;
        Ok(AlertObservation {
            depth,
            firing,
            changed: announce == Some(true),
        })
    }
}
