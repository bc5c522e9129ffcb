//! Redelivery: sending an event again to destinations it already reached (or gave up on), for
//! a consumer that lost it. The deliveries get a fresh attempt budget as a replay gives; the
//! destination sees the same `webhook-id` as the first time and can dedup on it.

use super::admin_actions::{self, Action, Actor};
use super::deliveries::revive;
use super::operations::{Operation, OperationFilter, Progress, lock_running, record_progress};
use super::routes::Routes;
use super::{Keyset, Store, StoreError};
use serde_json::json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

/// Events per transaction for bulk redeliveries.
const BATCH: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    #[error("no event {0}")]
    NotFound(Uuid),
    #[error("event {event} has no delivery to destination {destination:?}")]
    UnknownDestination { event: Uuid, destination: String },
    /// `route` is `<source>/<destination>`.
    #[error("event {event} cannot be redelivered: destination {route} is no longer configured")]
    Unroutable { event: Uuid, route: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RedeliverError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(error))
    }
}

/// What a redelivery did.
#[derive(Debug)]
pub struct Redelivered {
    pub source: String,
    /// Deliveries moved back to pending (those already pending are left as they are).
    pub destinations: Vec<String>,
}

impl Store {
    /// Puts the event's deliveries to `destinations` (all of them when `None`) that are
    /// delivered or dead back to pending, due now, with a fresh budget from `routes`; closes
    /// the open dead letters of those that were dead, as a replay would. Nothing changes when
    /// a name is not one of the event's destinations or no longer configured. Recorded as
    /// `actor`'s redelivery if any delivery was revived.
    pub async fn redeliver(
        &self,
        event: Uuid,
        destinations: Option<&[String]>,
        routes: &Routes,
        actor: &Actor,
    ) -> Result<Redelivered, RedeliverError> {
        let mut tx = self.pool().begin().await?;
        let source: String = sqlx::query_scalar("SELECT source FROM events WHERE id = $1")
            .bind(event)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(RedeliverError::NotFound(event))?;
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT destination FROM deliveries WHERE event_id = $1 ORDER BY destination",
        )
        .bind(event)
        .fetch_all(&mut *tx)
        .await?;
        let chosen = match destinations {
            None => existing,
            Some(names) => {
                if let Some(unknown) = names.iter().find(|n| !existing.contains(n)) {
                    return Err(RedeliverError::UnknownDestination {
                        event,
                        destination: unknown.clone(),
                    });
                }
                names.to_vec()
            }
        };
        // Every destination of a source shares the source's `retry.max_attempts`.
        let mut budget = 0;
        for destination in &chosen {
            budget =
                routes
                    .budget(&source, destination)
                    .ok_or_else(|| RedeliverError::Unroutable {
                        event,
                        route: format!("{source}/{destination}"),
                    })?;
        }
        let wanted: Vec<Wanted> = chosen
            .iter()
            .map(|destination| Wanted {
                event,
                destination: destination.clone(),
                budget,
            })
            .collect();
        let revived = revive_in(&mut tx, &wanted).await?;
        let mut revived: Vec<String> = revived.into_iter().map(|(_, d)| d).collect();
        revived.sort_unstable();
        if !revived.is_empty() {
            // `destinations` as asked: null means every destination of the event.
            let target = json!({ "event": event, "destinations": destinations });
            let outcome = json!({ "redelivered": &revived });
            admin_actions::record(&mut tx, actor, Action::Redeliver, target, outcome).await?;
        }
        tx.commit().await?;
        Ok(Redelivered {
            source,
            destinations: revived,
        })
    }
}

/// One delivery to send again, with the fresh budget it gets.
struct Wanted {
    event: Uuid,
    destination: String,
    budget: u32,
}

/// Moves those of `wanted` that are delivered or dead back to pending, due now, with their
/// budget on top of the attempts made; closes the open dead letters of the dead ones; puts
/// their events back to pending. Locks in the order replays lock: dead letters, deliveries,
/// events. Returns the revived `(event, destination)` pairs.
async fn revive_in(
    tx: &mut PgConnection,
    wanted: &[Wanted],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    let events: Vec<Uuid> = wanted.iter().map(|w| w.event).collect();
    let destinations: Vec<&str> = wanted.iter().map(|w| w.destination.as_str()).collect();
    let budgets: Vec<i32> = wanted.iter().map(|w| w.budget as i32).collect();
    sqlx::query(
        "SELECT id FROM dead_letters
         WHERE (event_id, destination) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
           AND replayed_at IS NULL
         ORDER BY created_at, id FOR UPDATE",
    )
    .bind(&events)
    .bind(&destinations)
    .execute(&mut *tx)
    .await?;
    let revived = revive(
        tx,
        &events,
        &destinations,
        &budgets,
        &["delivered", "dead"],
        "redelivered",
    )
    .await?;
    let (dead_events, dead_destinations): (Vec<Uuid>, Vec<&str>) = revived
        .iter()
        .filter(|(_, _, state)| state == "dead")
        .map(|(e, d, _)| (*e, d.as_str()))
        .unzip();
    // A dead letter is never left open for a delivery that is pending again.
    sqlx::query(
        "UPDATE dead_letters SET replayed_at = now()
         WHERE (event_id, destination) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))
           AND replayed_at IS NULL",
    )
    .bind(&dead_events)
    .bind(&dead_destinations)
    .execute(&mut *tx)
    .await?;
    let mut revived_events: Vec<Uuid> = revived.iter().map(|(e, _, _)| *e).collect();
    revived_events.sort_unstable();
    revived_events.dedup();
    sqlx::query(
        "UPDATE events SET status = 'pending'
         WHERE id IN (SELECT id FROM events
                      WHERE id = ANY($1) AND status <> 'pending'
                      ORDER BY id FOR NO KEY UPDATE)",
    )
    .bind(&revived_events)
    .execute(&mut *tx)
    .await?;
    Ok(revived.into_iter().map(|(e, d, _)| (e, d)).collect())
}

/// What one batch of a bulk redelivery did.
#[derive(Debug, Default)]
pub struct RedeliverBatch {
    /// Events with a delivery moved back to pending, by source: what to put on the streams.
    pub events_by_source: HashMap<String, Vec<Uuid>>,
    /// Where the next batch starts; `None` when this batch was the last.
    pub next: Option<Keyset>,
}

/// Appends ` AND ...` conditions selecting the events a bulk redelivery applies to: `filter`,
/// cut at `started` so events that arrive while it runs are not taken in.
fn push_selection(
    query: &mut QueryBuilder<Postgres>,
    filter: &OperationFilter,
    started: chrono::DateTime<chrono::Utc>,
) {
    if let Some(source) = &filter.source {
        query.push(" AND e.source = ").push_bind(source.clone());
    }
    if let Some(status) = &filter.status {
        query.push(" AND e.status = ").push_bind(status.clone());
    }
    if let Some(destination) = &filter.destination {
        query
            .push(" AND EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.destination = ")
            .push_bind(destination.clone())
            .push(")");
    }
    if let Some(since) = filter.since {
        query.push(" AND e.received_at >= ").push_bind(since);
    }
    let until = filter.until.map_or(started, |u| u.min(started));
    query.push(" AND e.received_at < ").push_bind(until);
}

impl Store {
    /// How many events a bulk redelivery selects.
    pub(super) async fn count_redeliverable(
        &self,
        filter: &OperationFilter,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64, StoreError> {
        let mut query = QueryBuilder::new("SELECT count(*) FROM events e WHERE TRUE");
        push_selection(&mut query, filter, started);
        Ok(query.build_query_scalar().fetch_one(self.pool()).await?)
    }

    /// Redelivers the operation's next batch of events after `after` (oldest first) and
    /// records the progress in the same transaction, so the counts stay exact across a cancel
    /// or a crash, as for replays. An event whose chosen destinations include one no longer
    /// configured is skipped and counted as failed. `None` once the operation is no longer
    /// running.
    pub async fn redeliver_operation_batch(
        &self,
        operation: &Operation,
        after: Option<Keyset>,
        routes: &Routes,
        lease: Duration,
    ) -> Result<Option<RedeliverBatch>, StoreError> {
        let mut tx = self.pool().begin().await?;
        if !lock_running(&mut tx, operation.id).await? {
            return Ok(None);
        }
        let mut query =
            QueryBuilder::new("SELECT e.id, e.source, e.received_at FROM events e WHERE TRUE");
        push_selection(&mut query, &operation.filter.0, operation.created_at);
        if let Some(after) = after {
            query
                .push(" AND (e.received_at, e.id) > (")
                .push_bind(after.at)
                .push(", ")
                .push_bind(after.id)
                .push(")");
        }
        query
            .push(" ORDER BY e.received_at, e.id LIMIT ")
            .push_bind(BATCH);
        let picked: Vec<(Uuid, String, chrono::DateTime<chrono::Utc>)> =
            query.build_query_as().fetch_all(&mut *tx).await?;
        let next = match picked.last() {
            Some(&(id, _, at)) if picked.len() as i64 >= BATCH => Some(Keyset { at, id }),
            _ => None,
        };
        let ids: Vec<Uuid> = picked.iter().map(|p| p.0).collect();
        let deliveries: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT event_id, destination FROM deliveries
             WHERE event_id = ANY($1) AND ($2::text IS NULL OR destination = $2)",
        )
        .bind(&ids)
        .bind(operation.filter.0.destination.as_deref())
        .fetch_all(&mut *tx)
        .await?;
        let sources: HashMap<Uuid, &str> =
            picked.iter().map(|(id, s, _)| (*id, s.as_str())).collect();
        let mut wanted = Vec::new();
        let mut unroutable: Vec<Uuid> = Vec::new();
        for (event, destination) in deliveries {
            let source = sources[&event];
            match routes.budget(source, &destination) {
                Some(budget) => wanted.push(Wanted {
                    event,
                    destination,
                    budget,
                }),
                None => unroutable.push(event),
            }
        }
        unroutable.sort_unstable();
        unroutable.dedup();
        // An event goes whole or not at all, as a single redelivery does.
        wanted.retain(|w| unroutable.binary_search(&w.event).is_err());
        let revived = revive_in(&mut tx, &wanted).await?;
        let handled = ids.len() - unroutable.len();
        let progress = Progress {
            done: handled,
            failed: unroutable.len(),
            position: next.or(after),
        };
        record_progress(&mut tx, operation.id, progress, lease).await?;
        tx.commit().await?;
        let mut events_by_source: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (event, _) in revived {
            let events = events_by_source
                .entry(sources[&event].to_string())
                .or_default();
            if !events.contains(&event) {
                events.push(event);
            }
        }
        Ok(Some(RedeliverBatch {
            events_by_source,
            next,
        }))
    }
}
