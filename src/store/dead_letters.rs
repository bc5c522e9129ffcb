//! Dead letters: deliveries that used up their attempts, kept for operators to inspect, replay
//! or purge (`purge.rs`).
//!
//! Bulk operations walk the table in keyset order, one short transaction per batch, so a
//! replay of 100,000 dead letters neither holds them in memory nor locks them all at once.
//! Rows are taken with `FOR UPDATE SKIP LOCKED`: two operators replaying overlapping
//! selections split the work instead of replaying a dead letter twice or waiting on each other.
//! A row passed over that way stays open if its holder rolls back; bulk operations check for
//! such rows before they finish and walk again (`crate::operations`).

use super::admin_actions::{self, Action, Actor};
use super::deliveries::revive;
use super::routes::Routes;
use super::{Store, StoreError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows per transaction for bulk replays and purges.
pub const BATCH: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("no dead letter {0}")]
    NotFound(Uuid),
    #[error(
        "dead letter {id} was already replayed at {}",
        .at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )]
    AlreadyReplayed { id: Uuid, at: DateTime<Utc> },
    /// `route` is `<source>/<destination>`.
    #[error("dead letter {id} cannot be replayed: destination {route} is no longer configured")]
    Unroutable { id: Uuid, route: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DeadLetterError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(error))
    }
}

/// Which dead letters a list or a bulk operation applies to. `since` is inclusive, `until`
/// exclusive, both on `created_at`. Serialized as the target of a recorded bulk action, with
/// only what narrows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeadLetterFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Also dead letters already replayed (never for replays).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_replayed: bool,
}

impl DeadLetterFilter {
    /// Whether anything narrows the selection beyond "all open dead letters".
    pub fn is_unfiltered(&self) -> bool {
        self.source.is_none()
            && self.destination.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// Appends ` AND ...` conditions on the `dead_letters` columns; values are bound.
    fn push_conditions(&self, query: &mut QueryBuilder<Postgres>) {
        if !self.include_replayed {
            query.push(" AND replayed_at IS NULL");
        }
        if let Some(source) = &self.source {
            query.push(" AND source = ").push_bind(source.clone());
        }
        if let Some(destination) = &self.destination {
            query
                .push(" AND destination = ")
                .push_bind(destination.clone());
        }
        if let Some(since) = self.since {
            query.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = self.until {
            query.push(" AND created_at < ").push_bind(until);
        }
    }
}

/// One line of a listing.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeadLetterSummary {
    pub id: Uuid,
    pub event_id: Uuid,
    pub source: String,
    pub destination: String,
    pub attempts: i32,
    pub failure_kind: String,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
}

/// Everything about one dead letter, with its event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    #[sqlx(flatten)]
    pub summary: DeadLetterSummary,
    pub payload: Vec<u8>,
    pub external_id: String,
    pub received_at: DateTime<Utc>,
    pub event_status: String,
    /// The request headers as stored with the event.
    pub headers: serde_json::Value,
}

/// As JSON: the payload as text when it is UTF-8, else as base64, so binary bodies survive.
impl serde::Serialize for DeadLetter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            summary: &'a DeadLetterSummary,
            external_id: &'a str,
            received_at: DateTime<Utc>,
            event_status: &'a str,
            #[serde(flatten)]
            request: ShownRequest<'a>,
        }
        Shown {
            summary: &self.summary,
            external_id: &self.external_id,
            received_at: self.received_at,
            event_status: &self.event_status,
            request: ShownRequest::new(&self.headers, &self.payload),
        }
        .serialize(serializer)
    }
}

/// A stored request for JSON: its headers, and its payload as text when it is UTF-8, else as
/// base64, so binary bodies survive.
#[derive(serde::Serialize)]
pub(super) struct ShownRequest<'a> {
    headers: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

impl<'a> ShownRequest<'a> {
    pub(super) fn new(headers: &'a serde_json::Value, payload: &'a [u8]) -> Self {
        let (payload, payload_base64) = match std::str::from_utf8(payload) {
            Ok(text) => (Some(text), None),
            Err(_) => (None, Some(BASE64.encode(payload))),
        };
        Self {
            headers,
            payload,
            payload_base64,
        }
    }
}

const SUMMARY_COLUMNS: &str = "id, event_id, source, destination, attempts, failure_kind, \
     last_status, last_error, first_attempt_at, last_attempt_at, created_at, replayed_at";

/// Where a bulk operation resumes: the last `(created_at, id)` it handled.
pub use super::Keyset as Cursor;

/// What one replay batch did.
#[derive(Debug, Default)]
pub struct ReplayBatch {
    /// Dead letters marked replayed, in `(created_at, id)` order.
    pub replayed: Vec<Uuid>,
    /// Events with a delivery moved back to pending, by source: what to put on the streams.
    pub events_by_source: HashMap<String, Vec<Uuid>>,
    /// Dead letters whose delivery was no longer dead (already replayed another way), so
    /// nothing was revived for them.
    pub without_dead_delivery: usize,
    /// Dead letters left open: their source or destination is no longer configured, so a
    /// replay could not deliver them.
    pub unroutable: Vec<Uuid>,
    /// Where the next batch of a bulk replay starts; `None` when this batch was the last.
    pub next: Option<Cursor>,
}

#[derive(sqlx::FromRow)]
struct Picked {
    id: Uuid,
    event_id: Uuid,
    source: String,
    destination: String,
    created_at: DateTime<Utc>,
}

impl Store {
    /// Newest first, at most `limit`, strictly older than `before` when given.
    pub async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<DeadLetterSummary>, StoreError> {
        let mut query = QueryBuilder::new(format!(
            "SELECT {SUMMARY_COLUMNS} FROM dead_letters WHERE TRUE"
        ));
        filter.push_conditions(&mut query);
        if let Some(before) = before {
            query
                .push(" AND (created_at, id) < (")
                .push_bind(before.at)
                .push(", ")
                .push_bind(before.id)
                .push(")");
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        Ok(query
            .build_query_as::<DeadLetterSummary>()
            .fetch_all(self.pool())
            .await?)
    }

    /// How many dead letters `filter` matches.
    pub async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<i64, StoreError> {
        let mut query = QueryBuilder::new("SELECT count(*) FROM dead_letters WHERE TRUE");
        filter.push_conditions(&mut query);
        Ok(query.build_query_scalar().fetch_one(self.pool()).await?)
    }

    /// How many open dead letters `filter` matches that a replay along `routes` would revive.
    pub async fn count_replayable(
        &self,
        filter: &DeadLetterFilter,
        routes: &Routes,
    ) -> Result<i64, StoreError> {
        let (sources, destinations) = routes.columns();
        let to_owned = |names: Vec<&str>| names.into_iter().map(String::from).collect::<Vec<_>>();
        let mut query = QueryBuilder::new("SELECT count(*) FROM dead_letters WHERE TRUE");
        DeadLetterFilter {
            include_replayed: false,
            ..filter.clone()
        }
        .push_conditions(&mut query);
        query
            .push(" AND (source, destination) IN (SELECT * FROM unnest(")
            .push_bind(to_owned(sources))
            .push("::text[], ")
            .push_bind(to_owned(destinations))
            .push("::text[]))");
        Ok(query.build_query_scalar().fetch_one(self.pool()).await?)
    }

    pub async fn dead_letter(&self, id: Uuid) -> Result<DeadLetter, DeadLetterError> {
        let row: Option<DeadLetter> = sqlx::query_as(
            "SELECT d.id, d.event_id, d.source, d.destination, d.attempts, d.failure_kind,
                    d.last_status, d.last_error, d.first_attempt_at, d.last_attempt_at,
                    d.created_at, d.replayed_at, d.payload,
                    e.external_id, e.received_at, e.status AS event_status, e.headers
             FROM dead_letters d JOIN events e ON e.id = d.event_id
             WHERE d.id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.ok_or(DeadLetterError::NotFound(id))
    }

    /// Fails on the first of `ids` that does not exist or, given the `routes` a replay needs,
    /// was already replayed or can no longer be delivered. Run before acting on explicit ids,
    /// so that a typo changes nothing.
    pub async fn check_dead_letters(
        &self,
        ids: &[Uuid],
        replay: Option<&Routes>,
    ) -> Result<(), DeadLetterError> {
        type Row = (Uuid, String, String, Option<DateTime<Utc>>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, source, destination, replayed_at FROM dead_letters WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        let found: HashMap<Uuid, Row> = rows.into_iter().map(|r| (r.0, r)).collect();
        for id in ids {
            let Some((_, source, destination, replayed_at)) = found.get(id) else {
                return Err(DeadLetterError::NotFound(*id));
            };
            let Some(routes) = replay else { continue };
            if let Some(at) = replayed_at {
                return Err(DeadLetterError::AlreadyReplayed { id: *id, at: *at });
            }
            if !routes.contains(source, destination) {
                return Err(DeadLetterError::Unroutable {
                    id: *id,
                    route: format!("{source}/{destination}"),
                });
            }
        }
        Ok(())
    }

    /// Replays those of `ids` (at most [`BATCH`]) still open, not locked by another replay,
    /// and deliverable along `routes`; recorded as `actor`'s replay if any was.
    pub async fn replay_dead_letters(
        &self,
        ids: &[Uuid],
        routes: &Routes,
        actor: &Actor,
    ) -> Result<ReplayBatch, StoreError> {
        let mut query = QueryBuilder::new(
            "SELECT id, event_id, source, destination, created_at FROM dead_letters
             WHERE replayed_at IS NULL AND id = ANY(",
        );
        query
            .push_bind(ids.to_vec())
            .push(") ORDER BY created_at, id FOR UPDATE SKIP LOCKED");
        let target = json!({ "dead_letters": ids });
        self.replay_batch(query, routes, usize::MAX, actor, target)
            .await
    }

    /// Replays the next [`BATCH`] open dead letters matching `filter` after `after`, oldest
    /// first; each batch that replays any is recorded as `actor`'s replay. Call again with the
    /// returned `next` until it is `None`.
    pub async fn replay_dead_letters_matching(
        &self,
        filter: &DeadLetterFilter,
        after: Option<Cursor>,
        routes: &Routes,
        actor: &Actor,
    ) -> Result<ReplayBatch, StoreError> {
        let target = json!({ "filter": filter });
        self.replay_batch(replay_select(filter, after), routes, BATCH, actor, target)
            .await
    }

    /// One transaction: lock the dead letters `select` picks, mark the deliverable ones
    /// replayed, give their deliveries a fresh attempt budget, put their events back to
    /// pending, and record it all as `actor`'s replay of `target`.
    async fn replay_batch(
        &self,
        select: QueryBuilder<Postgres>,
        routes: &Routes,
        batch: usize,
        actor: &Actor,
        target: Value,
    ) -> Result<ReplayBatch, StoreError> {
        let mut tx = self.pool().begin().await?;
        let replayed = replay_batch_in(&mut tx, select, routes, batch).await?;
        if !replayed.replayed.is_empty() {
            let outcome = json!({
                "replayed": replayed.replayed.len(),
                "dead_letters": &replayed.replayed,
                "unroutable": &replayed.unroutable,
            });
            admin_actions::record(&mut tx, actor, Action::Replay, target, outcome).await?;
        }
        tx.commit().await?;
        Ok(replayed)
    }
}

/// Narrows a query ending in a WHERE clause to `filter`, resuming after `after`: the next
/// [`BATCH`] rows in `(created_at, id)` order, locked.
pub(super) fn push_keyset(
    query: &mut QueryBuilder<Postgres>,
    filter: &DeadLetterFilter,
    after: Option<Cursor>,
) {
    filter.push_conditions(query);
    if let Some(after) = after {
        query
            .push(" AND (created_at, id) > (")
            .push_bind(after.at)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    query
        .push(" ORDER BY created_at, id LIMIT ")
        .push_bind(BATCH as i64)
        .push(" FOR UPDATE SKIP LOCKED");
}

/// Picks the next [`BATCH`] open dead letters matching `filter` after `after`, for replaying.
pub(super) fn replay_select(
    filter: &DeadLetterFilter,
    after: Option<Cursor>,
) -> QueryBuilder<Postgres> {
    let filter = DeadLetterFilter {
        include_replayed: false,
        ..filter.clone()
    };
    let mut query = QueryBuilder::new(
        "SELECT id, event_id, source, destination, created_at FROM dead_letters WHERE TRUE",
    );
    push_keyset(&mut query, &filter, after);
    query
}

/// [`Store::replay_batch`] inside the caller's transaction, which commits it.
pub(super) async fn replay_batch_in(
    tx: &mut PgConnection,
    mut select: QueryBuilder<Postgres>,
    routes: &Routes,
    batch: usize,
) -> Result<ReplayBatch, StoreError> {
    let picked: Vec<Picked> = select.build_query_as().fetch_all(&mut *tx).await?;
    let Some(last) = picked.last() else {
        return Ok(ReplayBatch::default());
    };
    let next = (picked.len() >= batch).then_some(Cursor {
        at: last.created_at,
        id: last.id,
    });
    // What cannot be delivered stays open rather than being revived for nobody.
    let mut unroutable = Vec::new();
    let mut budget: Vec<i32> = Vec::new();
    let picked: Vec<Picked> = picked
        .into_iter()
        .filter(|p| match routes.budget(&p.source, &p.destination) {
            Some(n) => {
                budget.push(n as i32);
                true
            }
            None => {
                unroutable.push(p.id);
                false
            }
        })
        .collect();
    let ids: Vec<Uuid> = picked.iter().map(|p| p.id).collect();
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;

    let events: Vec<Uuid> = picked.iter().map(|p| p.event_id).collect();
    let destinations: Vec<&str> = picked.iter().map(|p| p.destination.as_str()).collect();
    let revived = revive(tx, &events, &destinations, &budget, &["dead"], "replayed").await?;

    let mut revived_events: Vec<Uuid> = revived.iter().map(|(e, _, _)| *e).collect();
    revived_events.sort_unstable();
    revived_events.dedup();
    sqlx::query(
        "UPDATE events SET status = 'pending'
             WHERE id IN (SELECT id FROM events
                          WHERE id = ANY($1) AND status = 'dead_lettered'
                          ORDER BY id FOR NO KEY UPDATE)",
    )
    .bind(&revived_events)
    .execute(&mut *tx)
    .await?;

    let mut events_by_source: HashMap<String, Vec<Uuid>> = HashMap::new();
    for p in &picked {
        if revived_events.binary_search(&p.event_id).is_ok() {
            let events = events_by_source.entry(p.source.clone()).or_default();
            if !events.contains(&p.event_id) {
                events.push(p.event_id);
            }
        }
    }
    Ok(ReplayBatch {
        without_dead_delivery: picked.len().saturating_sub(revived.len()),
        replayed: ids,
        events_by_source,
        unroutable,
        next,
    })
}
