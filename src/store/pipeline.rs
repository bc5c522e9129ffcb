//! Deliveries hookgate itself cannot complete become `pipeline` dead letters, without another
//! attempt: those whose attempt budget was spent by claims that never recorded an outcome,
//! those whose outcome cannot be recorded, and those whose source or destination left the
//! configuration.

use super::deliveries::{ClaimedEvent, settle_events, storable};
use super::routes::{Routes, unrouted};
use super::{Store, StoreError};
use sqlx::PgConnection;
use uuid::Uuid;

/// Unrouted deliveries dead-lettered per transaction.
const UNROUTED_BATCH: i64 = 1000;
/// Why a delivery found with its attempts used up, and still pending, is dead-lettered: each
/// of its claims ended without an outcome (a crash, a panic, a record that failed).
pub const SPENT: &str = "attempt budget spent without a recorded outcome";

/// A delivery hookgate dead-lettered as its own failure, and why.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Buried {
    pub event_id: Uuid,
    pub source: String,
    pub destination: String,
    pub reason: String,
}

impl Store {
    /// Dead-letters the unleased pending deliveries of `events` whose budget is spent.
    pub(super) async fn bury_spent(&self, events: &[Uuid]) -> Result<Vec<Buried>, StoreError> {
        let spent: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT event_id, destination FROM deliveries
             WHERE event_id = ANY($1) AND state = 'pending' AND attempts >= max_attempts
               AND (lease_until IS NULL OR lease_until < now())",
        )
        .bind(events)
        .fetch_all(&self.pool)
        .await?;
        if spent.is_empty() {
            return Ok(Vec::new());
        }
        let graves: Vec<Grave> = spent
            .iter()
            .map(|(event_id, destination)| Grave {
                event_id: *event_id,
                destination,
                reason: SPENT.to_string(),
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        let buried = bury(&mut tx, &graves, None).await?;
        tx.commit().await?;
        Ok(buried)
    }

    /// Dead-letters `destination` of a claimed event whose outcome cannot be recorded, with
    /// `reason`, if the claim still holds it (else its new owner decides).
    pub async fn bury_unrecorded(
        &self,
        event: &ClaimedEvent,
        destination: &str,
        reason: &str,
    ) -> Result<Vec<Buried>, StoreError> {
        let grave = Grave {
            event_id: event.event_id,
            destination,
            reason: reason.to_string(),
        };
        let mut tx = self.pool.begin().await?;
        let buried = bury(&mut tx, &[grave], Some(event.lease_token)).await?;
        tx.commit().await?;
        Ok(buried)
    }

    /// Dead-letters every unleased pending delivery whose source or destination is not among
    /// `routes`: no worker reads its stream or knows where to send it, so it would wait
    /// forever. Walks the pending deliveries once, in event order, a batch per transaction.
    pub async fn bury_unrouted(&self, routes: &Routes) -> Result<Vec<Buried>, StoreError> {
        let (sources, destinations) = routes.columns();
        let mut after = Uuid::nil();
        let mut buried = Vec::new();
        loop {
            let mut tx = self.pool.begin().await?;
            // The walk resumes at (not after) the last row's event: a batch may end between
            // two deliveries of one event.
            let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
                "SELECT d.event_id, e.source, d.destination
                 FROM deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until < now())
                   AND d.event_id >= $3
                   AND (e.source, d.destination) NOT IN
                       (SELECT * FROM unnest($1::text[], $2::text[]))
                 ORDER BY d.event_id
                 LIMIT $4
                 FOR UPDATE OF d SKIP LOCKED",
            )
            .bind(&sources)
            .bind(&destinations)
            .bind(after)
            .bind(UNROUTED_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let graves: Vec<Grave> = rows
                .iter()
                .map(|(event_id, source, destination)| Grave {
                    event_id: *event_id,
                    destination,
                    reason: unrouted(source, destination),
                })
                .collect();
            buried.extend(bury(&mut tx, &graves, None).await?);
            tx.commit().await?;
            match rows.last() {
                Some(&(id, _, _)) if rows.len() as i64 == UNROUTED_BATCH => after = id,
                _ => return Ok(buried),
            }
        }
    }
}

/// A pending delivery to end as a `pipeline` dead letter, and why.
struct Grave<'a> {
    event_id: Uuid,
    destination: &'a str,
    reason: String,
}

/// Ends those of `graves` still pending (and, with `lease_token`, still held by that claim) as
/// `pipeline` dead letters whose error is their reason, and settles their events.
async fn bury(
    conn: &mut PgConnection,
    graves: &[Grave<'_>],
    lease_token: Option<Uuid>,
) -> Result<Vec<Buried>, sqlx::Error> {
    if graves.is_empty() {
        return Ok(Vec::new());
    }
    let events: Vec<Uuid> = graves.iter().map(|g| g.event_id).collect();
    let destinations: Vec<&str> = graves.iter().map(|g| g.destination).collect();
    let reasons: Vec<String> = graves
        .iter()
        .map(|g| storable(&g.reason).into_owned())
        .collect();
    let ids: Vec<Uuid> = graves.iter().map(|_| Uuid::now_v7()).collect();
    let buried: Vec<Buried> = sqlx::query_as(
        "WITH grave AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[])
                 AS g (event_id, destination, reason, dead_letter)
         ), ended AS (
             UPDATE deliveries d
             SET state = 'dead', reason = g.reason, last_error = g.reason,
                 lease_until = NULL, lease_token = NULL
             FROM grave g
             WHERE d.event_id = g.event_id AND d.destination = g.destination
               AND d.state = 'pending' AND ($5::uuid IS NULL OR d.lease_token = $5)
             RETURNING g.dead_letter, g.reason, d.event_id, d.destination, d.attempts,
                       d.last_status, d.first_attempt_at, d.last_attempt_at
         )
         INSERT INTO dead_letters
             (id, event_id, source, destination, payload, attempts, last_error, last_status,
              failure_kind, first_attempt_at, last_attempt_at)
         SELECT x.dead_letter, e.id, e.source, x.destination, e.payload, x.attempts, x.reason,
                x.last_status, 'pipeline', x.first_attempt_at, x.last_attempt_at
         FROM ended x JOIN events e ON e.id = x.event_id
         RETURNING event_id, source, destination, last_error AS reason",
    )
    .bind(&events)
    .bind(&destinations)
    .bind(&reasons)
    .bind(&ids)
    .bind(lease_token)
    .fetch_all(&mut *conn)
    .await?;
    let mut settle: Vec<Uuid> = buried.iter().map(|b| b.event_id).collect();
    settle.sort_unstable();
    settle.dedup();
    settle_events(conn, &settle).await?;
    Ok(buried)
}
