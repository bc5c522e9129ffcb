//! Shared alert state, so a transition is announced by exactly one process.

use super::{Store, StoreError};

impl Store {
    /// Records whether `source`'s dead-letter alert fires; `true` only for the caller that
    /// changed it (a source seen for the first time counts as a change only when firing).
    pub async fn flip_dead_letter_alert(
        &self,
        source: &str,
        firing: bool,
    ) -> Result<bool, StoreError> {
        // `xmax = 0` marks a fresh insert: a first "not firing" is no news.
        let announce: Option<bool> = sqlx::query_scalar(
            "INSERT INTO dead_letter_alerts (source, firing) VALUES ($1, $2)
             ON CONFLICT (source) DO UPDATE SET firing = $2, changed_at = now()
                 WHERE dead_letter_alerts.firing IS DISTINCT FROM $2
             RETURNING (xmax <> 0 OR firing)",
        )
        .bind(source)
        .bind(firing)
        .fetch_optional(self.pool())
        .await?;
        Ok(announce == Some(true))
    }
}
