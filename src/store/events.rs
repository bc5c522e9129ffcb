//! Inserting received events: the dedup point of the whole pipeline.

use super::{Store, StoreError};
use crate::verify::Verified;
use std::time::Duration;
use uuid::Uuid;

/// Beyond this the provider gets 503 and retries; the insert may still commit, in which case
/// the retry is answered "duplicate" and nothing is lost or doubled.
const INSERT_TIMEOUT: Duration = Duration::from_secs(5);

/// A webhook that passed verification, ready to store.
pub struct NewEvent<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub payload: &'a [u8],
    pub headers: serde_json::Value,
    /// The source's destinations: one delivery each, created with the event.
    pub destinations: Vec<&'a str>,
    /// The source's attempt budget per delivery.
    pub max_attempts: i32,
    /// Only verified requests become events.
    pub verified: Verified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now; the caller must enqueue it.
    New(Uuid),
    /// The (source, external id) was already stored under this id.
    Duplicate(Uuid),
}

impl Store {
    pub async fn insert_event(&self, event: &NewEvent<'_>) -> Result<Inserted, StoreError> {
        tokio::time::timeout(INSERT_TIMEOUT, self.insert_event_inner(event))
            .await
            .map_err(|_| StoreError::Timeout(INSERT_TIMEOUT))?
    }

    async fn insert_event_inner(&self, event: &NewEvent<'_>) -> Result<Inserted, StoreError> {
        // UUIDv7: time-ordered, so the primary key index stays append-mostly.
        let id = Uuid::now_v7();
        // One statement writes the event and its deliveries, so all commit or none does: from
        // the commit on, the pending deliveries are the record of work owed, whether or not
        // the XADD that follows succeeds. A source without destinations owes nothing.
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "WITH ins AS (
                 INSERT INTO events (id, source, external_id, payload, headers, status)
                 VALUES ($1, $2, $3, $4, $5,
                         CASE WHEN cardinality($6::text[]) = 0 THEN 'delivered' ELSE 'pending' END)
                 ON CONFLICT (source, external_id) DO NOTHING
                 RETURNING id, received_at
             ), deliveries AS (
                 INSERT INTO deliveries (event_id, destination, max_attempts, next_attempt_at)
                 SELECT ins.id, d, $7, ins.received_at FROM ins, unnest($6::text[]) AS d
             )
             SELECT id FROM ins",
        )
        .bind(id)
        .bind(event.source)
        .bind(event.external_id)
        .bind(event.payload)
        .bind(&event.headers)
        .bind(&event.destinations)
        .bind(event.max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(id) = inserted {
            return Ok(Inserted::New(id));
        }
        // A separate statement: the conflicting row may have been committed after the insert's
        // snapshot was taken, and only a new snapshot sees it.
        let existing: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM events WHERE source = $1 AND external_id = $2")
                .bind(event.source)
                .bind(event.external_id)
                .fetch_optional(&self.pool)
                .await?;
        existing
            .map(Inserted::Duplicate)
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }
}
