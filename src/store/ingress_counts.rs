//! Requests per source, minute and outcome (`ingress_counts`): what receivers answered, for
//! the overview. A count is added by the receiver that answered, so every process's requests
//! show wherever the overview is read.

use super::{Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;

/// How long the counts are kept: the overview looks back an hour, `GET /v1/sources` a day.
pub const KEPT: TimeDelta = TimeDelta::days(1);

/// Requests answered with one outcome (`accepted`, `duplicate`, `unverified`, ..., the
/// `outcome` label of `hookgate_webhooks_received_total`) for one source within one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub minute: DateTime<Utc>,
    pub source: String,
    pub outcome: &'static str,
    pub count: i64,
}

impl Store {
    /// Adds the counts to what other receivers (and this one, earlier) recorded, and forgets
    /// the minutes older than [`KEPT`].
    pub async fn add_ingress_counts(&self, counts: &[Count]) -> Result<(), StoreError> {
        let minutes: Vec<DateTime<Utc>> = counts.iter().map(|c| c.minute).collect();
        let sources: Vec<&str> = counts.iter().map(|c| c.source.as_str()).collect();
        let outcomes: Vec<&str> = counts.iter().map(|c| c.outcome).collect();
        let numbers: Vec<i64> = counts.iter().map(|c| c.count).collect();
        let mut tx = self.pool().begin().await?;
        // Sorted, so that receivers adding the same rows at once lock them in one order.
        sqlx::query(
            "INSERT INTO ingress_counts (minute, source, outcome, count)
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::int8[])
             ORDER BY 1, 2, 3
             ON CONFLICT (minute, source, outcome)
             DO UPDATE SET count = ingress_counts.count + excluded.count",
        )
        .bind(&minutes)
        .bind(&sources)
        .bind(&outcomes)
        .bind(&numbers)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM ingress_counts WHERE minute < now() - $1::interval")
            .bind(KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Each source's requests by outcome in the minutes from `since`'s on.
    pub async fn ingress_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, BTreeMap<String, i64>>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT source, outcome, sum(count)::int8 FROM ingress_counts
             WHERE minute >= date_trunc('minute', $1::timestamptz)
             GROUP BY source, outcome",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        let mut by_source: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (source, outcome, count) in rows {
            by_source.entry(source).or_default().insert(outcome, count);
        }
        Ok(by_source)
    }
}
