//! Inserting received events: the dedup point of the whole pipeline.

use super::requeue::REQUEUE_GRACE;
use super::{Store, StoreError};
use crate::verify::Verified;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A webhook that passed verification, ready to store.
pub struct NewEvent {
    pub source: String,
    pub external_id: String,
    /// The provider's event type, when the webhook names one.
    pub event_type: Option<String>,
    pub payload: Bytes,
    pub headers: serde_json::Value,
    /// The destinations of its source that take this event: one delivery each, created with
    /// the event.
    pub destinations: Vec<String>,
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
    /// Stores `events` with one statement, so all of them commit together (or none does), and
    /// answers for each, in order: new, or a duplicate of an event already stored (possibly
    /// by another of `events`).
    pub async fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        // UUIDv7: time-ordered, so the primary key index stays append-mostly.
        let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
        let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
        let external_ids: Vec<&str> = events.iter().map(|e| e.external_id.as_str()).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_ref()).collect();
        let headers: Vec<&serde_json::Value> = events.iter().map(|e| &e.headers).collect();
        let types: Vec<Option<&str>> = events.iter().map(|e| e.event_type.as_deref()).collect();
        // Each event's destinations, as parallel arrays keyed by the event's new id.
        let (mut route_events, mut route_names, mut route_budgets) = (vec![], vec![], vec![]);
        for (id, e) in ids.iter().zip(events) {
            for destination in &e.destinations {
                route_events.push(*id);
                route_names.push(destination.as_str());
                route_budgets.push(e.max_attempts);
            }
        }
        // One statement writes the events and their deliveries, so all commit or none does:
        // from the commit on, the pending deliveries are the record of work owed, whether or
        // not the XADD that follows succeeds. An event no destination takes owes nothing.
        // Rows go in key order, so concurrent batches wait on each other's unique-index
        // entries in one order and cannot deadlock. A key twice in one batch is inserted
        // once: ON CONFLICT DO NOTHING skips the second row as it would a committed one.
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "WITH input AS (
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[],
                                      $10::text[])
                     AS t (id, source, external_id, payload, headers, event_type)
             ), routes AS (
                 SELECT * FROM unnest($6::uuid[], $7::text[], $8::int4[])
                     AS r (event_id, destination, max_attempts)
             ), ins AS (
                 INSERT INTO events (id, source, external_id, payload, headers, event_type, status)
                 SELECT i.id, i.source, i.external_id, i.payload, i.headers, i.event_type,
                        CASE WHEN EXISTS (SELECT 1 FROM routes r WHERE r.event_id = i.id)
                             THEN 'pending' ELSE 'delivered' END
                 FROM input i
                 ORDER BY i.source, i.external_id
                 ON CONFLICT (source, external_id) DO NOTHING
                 RETURNING id, received_at, status
             ), arrivals AS (
                 -- Each new event's arrival, for the live stream (migration 0020: written
                 -- here, not by a trigger, which cost a tenth of ingest's throughput).
                 INSERT INTO event_transitions (event_id, destination, from_state, to_state,
                                                reason)
                 SELECT id, NULL, NULL, status, 'received' FROM ins ORDER BY id
             ), deliveries AS (
                 INSERT INTO deliveries
                     (event_id, destination, max_attempts, next_attempt_at, requeue_at,
                      requeue_check)
                 SELECT ins.id, r.destination, r.max_attempts, ins.received_at,
                        ins.received_at + make_interval(secs => $9), true
                 FROM ins JOIN routes r ON r.event_id = ins.id
             )
             SELECT id FROM ins",
        )
        .bind(&ids)
        .bind(&sources)
        .bind(&external_ids)
        .bind(&payloads)
        .bind(&headers)
        .bind(&route_events)
        .bind(&route_names)
        .bind(&route_budgets)
        .bind(REQUEUE_GRACE.as_secs_f64())
        .bind(&types)
        .fetch_all(&self.pool)
        .await?;
        let inserted: HashSet<Uuid> = inserted.into_iter().collect();
        if inserted.len() == events.len() {
            return Ok(ids.into_iter().map(Inserted::New).collect());
        }
        let existing = self.existing_ids(events, &ids, &inserted).await?;
        ids.iter()
            .zip(events)
            .map(|(id, e)| match inserted.contains(id) {
                true => Ok(Inserted::New(*id)),
                false => existing
                    .get(&(e.source.as_str(), e.external_id.as_str()))
                    .map(|id| Inserted::Duplicate(*id))
                    .ok_or(StoreError::Db(sqlx::Error::RowNotFound)),
            })
            .collect()
    }

    /// The stored ids of the `events` that were not inserted. A separate statement: a
    /// conflicting row may have been committed after the insert's snapshot was taken, and
    /// only a new snapshot sees it.
    async fn existing_ids<'a>(
        &self,
        events: &'a [NewEvent],
        ids: &[Uuid],
        inserted: &HashSet<Uuid>,
    ) -> Result<HashMap<(&'a str, &'a str), Uuid>, StoreError> {
        let (sources, external_ids): (Vec<&str>, Vec<&str>) = ids
            .iter()
            .zip(events)
            .filter(|(id, _)| !inserted.contains(id))
            .map(|(_, e)| (e.source.as_str(), e.external_id.as_str()))
            .unzip();
        let rows: Vec<(String, String, Uuid)> = sqlx::query_as(
            "SELECT e.source, e.external_id, e.id
             FROM events e JOIN unnest($1::text[], $2::text[]) AS k (source, external_id)
                 USING (source, external_id)",
        )
        .bind(&sources)
        .bind(&external_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(source, external_id, id)| {
                let key = events
                    .iter()
                    .find(|e| e.source == source && e.external_id == external_id)?;
                Some(((key.source.as_str(), key.external_id.as_str()), id))
            })
            .collect())
    }
}
