//! Claiming due deliveries: one statement for all the events a worker read at once.

use super::deliveries::{Claimed, ClaimedEvent, Claims};
use super::{Store, StoreError};
use sqlx::Row;
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

impl Store {
    /// Claims every due, unleased, pending delivery of `events` for `lease`, counting the
    /// attempt now: a worker that dies mid-delivery still used up that attempt. A delivery
    /// whose attempts are used up is not claimed again but dead-lettered: its last claims
    /// ended without an outcome, so a message that crashes workers, or whose outcome cannot be
    /// recorded, is tried `max_attempts` times, not forever. The claims share one lease token.
    pub async fn claim(&self, events: &[Uuid], lease: Duration) -> Result<Claims, StoreError> {
        let spent = self.bury_spent(events).await?;
        let token = Uuid::new_v4();
        let rows = sqlx::query(
            "WITH claimed AS (
                 UPDATE deliveries
                 SET lease_until = now() + make_interval(secs => $2),
                     lease_token = $3,
                     -- Should this worker die, the scheduler requeues the delivery then.
                     requeue_at = now() + make_interval(secs => $2),
                     requeue_check = false,
                     attempts = attempts + 1,
                     first_attempt_at = coalesce(first_attempt_at, now()),
                     last_attempt_at = now()
                 -- Found through deliveries_pending by event id (migration 0011 says why).
                 WHERE event_id = ANY($1) AND state = 'pending' AND attempts < max_attempts
                   AND next_attempt_at <= now()
                   AND (lease_until IS NULL OR lease_until < now())
                 RETURNING event_id, destination, attempts, max_attempts
             )
             SELECT c.event_id, c.destination, c.attempts, c.max_attempts, e.source, e.payload,
                    (SELECT h->>1 FROM jsonb_array_elements(e.headers) h
                     WHERE h->>0 = 'content-type' LIMIT 1) AS content_type
             FROM claimed c JOIN events e ON e.id = c.event_id",
        )
        .bind(events)
        .bind(lease.as_secs_f64())
        .bind(token)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: BTreeMap<Uuid, ClaimedEvent> = BTreeMap::new();
        for row in &rows {
            let event_id: Uuid = row.try_get("event_id")?;
            let delivery = Claimed {
                destination: row.try_get("destination")?,
                attempt: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
            };
            match claimed.get_mut(&event_id) {
                Some(event) => event.deliveries.push(delivery),
                None => {
                    let event = ClaimedEvent {
                        event_id,
                        source: row.try_get("source")?,
                        payload: row.try_get("payload")?,
                        content_type: row.try_get("content_type")?,
                        lease_token: token,
                        deliveries: vec![delivery],
                    };
                    claimed.insert(event_id, event);
                }
            }
        }
        Ok(Claims {
            events: claimed.into_values().collect(),
            spent,
        })
    }
}
