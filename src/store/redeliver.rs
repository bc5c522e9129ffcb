//! Redelivery: sending an event again to destinations it already reached (or gave up on), for
//! a consumer that lost it. The deliveries get a fresh attempt budget as a replay gives; the
//! destination sees the same `webhook-id` as the first time and can dedup on it.

use super::routes::Routes;
use super::{Store, StoreError};
use uuid::Uuid;

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
    /// a name is not one of the event's destinations or no longer configured.
    pub async fn redeliver(
        &self,
        event: Uuid,
        destinations: Option<&[String]>,
        routes: &Routes,
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
        // Locked in the order replays lock: dead letters, then deliveries, then the event.
        sqlx::query(
            "SELECT id FROM dead_letters
             WHERE event_id = $1 AND destination = ANY($2) AND replayed_at IS NULL
             ORDER BY created_at, id FOR UPDATE",
        )
        .bind(event)
        .bind(&chosen)
        .execute(&mut *tx)
        .await?;
        let revived: Vec<(String, String)> = sqlx::query_as(
            "WITH locked AS (
                 SELECT destination, state FROM deliveries
                 WHERE event_id = $1 AND destination = ANY($2)
                   AND state IN ('delivered', 'dead')
                 ORDER BY destination
                 FOR UPDATE
             )
             UPDATE deliveries d
             SET state = 'pending',
                 reason = 'redelivered',
                 max_attempts = d.attempts + $3,
                 next_attempt_at = now(),
                 lease_until = NULL,
                 lease_token = NULL
             FROM locked l
             WHERE d.event_id = $1 AND d.destination = l.destination
             RETURNING d.destination, l.state",
        )
        .bind(event)
        .bind(&chosen)
        .bind(budget as i32)
        .fetch_all(&mut *tx)
        .await?;
        let was_dead: Vec<&str> = revived
            .iter()
            .filter(|(_, state)| state == "dead")
            .map(|(d, _)| d.as_str())
            .collect();
        // A dead letter is never left open for a delivery that is pending again.
        sqlx::query(
            "UPDATE dead_letters SET replayed_at = now()
             WHERE event_id = $1 AND destination = ANY($2) AND replayed_at IS NULL",
        )
        .bind(event)
        .bind(&was_dead)
        .execute(&mut *tx)
        .await?;
        if !revived.is_empty() {
            sqlx::query(
                "UPDATE events SET status = 'pending' WHERE id = $1 AND status <> 'pending'",
            )
            .bind(event)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut destinations: Vec<String> = revived.into_iter().map(|(d, _)| d).collect();
        destinations.sort_unstable();
        Ok(Redelivered {
            source,
            destinations,
        })
    }
}
