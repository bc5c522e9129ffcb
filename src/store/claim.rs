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
    /// A delivery whose destination is paused, or whose breaker is open, is not claimed: it
    /// waits for the scheduler (see `Store::release_waiting`), its attempts untouched; so
    /// does one to an `ordered` destination (`ordered`: `source/destination` keys) that is not
    /// that destination's head, until the one ahead settles (see `store::ordered`).
    pub async fn claim(
        &self,
        events: &[Uuid],
        lease: Duration,
        ordered: &[String],
    ) -> Result<Claims, StoreError> {
        let spent = self.bury_spent(events).await?;
        let token = Uuid::new_v4();
        let rows = sqlx::query(
            "WITH locked AS (
                 -- The batch's due, unleased deliveries (found through deliveries_pending by
                 -- event id, migration 0011 says why): the rows this statement may claim or
                 -- park, and no other, locked in key order before anything changes, so two
                 -- claims of overlapping batches (an event enqueued twice, read by two
                 -- workers) wait for each other instead of deadlocking. A row it cannot act on
                 -- stays unlocked: the unrouted sweep skips locked rows, and would miss it.
                 SELECT d.event_id, d.destination FROM deliveries d
                 WHERE d.event_id = ANY($1) AND d.state = 'pending'
                   AND d.attempts < d.max_attempts AND d.next_attempt_at <= now()
                   AND (d.lease_until IS NULL OR d.lease_until < now())
                 ORDER BY d.event_id, d.destination
                 FOR UPDATE
             ), due AS (
                 SELECT d.event_id, d.destination, e.source
                 FROM locked l
                 JOIN deliveries d ON d.event_id = l.event_id AND d.destination = l.destination
                 JOIN events e ON e.id = d.event_id
                 WHERE d.state = 'pending'
                   AND d.attempts < d.max_attempts AND d.next_attempt_at <= now()
                   AND (d.lease_until IS NULL OR d.lease_until < now())
             ), held AS (
                 -- Due deliveries whose destination is paused, not closed, or draining
                 -- (migration 0013): only these can wait.
                 SELECT u.event_id, u.destination, u.source, g.paused, g.state, g.drain_after
                 FROM due u JOIN destinations g
                     ON g.source = u.source AND g.destination = u.destination
                 WHERE g.paused OR g.state <> 'closed' OR g.drain_after IS NOT NULL
             ), probing AS (
                 -- A breaker whose cool-down is over lets one probe through, under a lease.
                 UPDATE destinations g
                 SET state = 'half_open', probe_until = now() + make_interval(secs => $2),
                     changed_at = now()
                 FROM (SELECT DISTINCT source, destination FROM held) h
                 WHERE g.source = h.source AND g.destination = h.destination AND NOT g.paused
                   AND g.state <> 'closed' AND g.open_until <= now()
                   AND (g.probe_until IS NULL OR g.probe_until < now())
                 RETURNING g.source, g.destination
             ), probe AS (
                 SELECT DISTINCT ON (h.source, h.destination) h.event_id, h.destination
                 FROM held h JOIN probing p USING (source, destination)
                 ORDER BY h.source, h.destination, h.event_id
             ), behind AS (
                 -- Due deliveries to an ordered destination that are not its head: one
                 -- received earlier is pending, or another is in flight (store/ordered.rs).
                 SELECT u.event_id, u.destination FROM due u
                 WHERE u.source || '/' || u.destination = ANY($4)
                   AND EXISTS (SELECT 1 FROM deliveries o JOIN events oe ON oe.id = o.event_id
                               WHERE o.destination = u.destination AND oe.source = u.source
                                 AND o.state = 'pending' AND o.event_id <> u.event_id
                                 AND (o.event_id < u.event_id OR o.lease_until > now()))
             ), waiting AS (
                 SELECT h.event_id, h.destination FROM held h
                 WHERE (h.paused OR h.state <> 'closed' OR h.event_id > h.drain_after)
                   AND NOT EXISTS (SELECT 1 FROM probe p
                                   WHERE p.event_id = h.event_id AND p.destination = h.destination)
                 UNION
                 SELECT event_id, destination FROM behind
             ), parked AS (
                 -- The scheduler owns what waits, and puts it back when its destination
                 -- delivers again: no worker spins on it, and no attempt is spent.
                 UPDATE deliveries d SET requeue_at = 'infinity', requeue_check = false
                 FROM waiting w
                 WHERE d.event_id = w.event_id AND d.destination = w.destination
                   AND d.state = 'pending' AND (d.lease_until IS NULL OR d.lease_until < now())
             ), claimed AS (
                 UPDATE deliveries d
                 SET lease_until = now() + make_interval(secs => $2),
                     lease_token = $3,
                     -- Should this worker die, the scheduler requeues the delivery then.
                     requeue_at = now() + make_interval(secs => $2),
                     requeue_check = false,
                     attempts = attempts + 1,
                     first_attempt_at = coalesce(first_attempt_at, now()),
                     last_attempt_at = now()
                 WHERE event_id = ANY($1) AND state = 'pending' AND attempts < max_attempts
                   AND next_attempt_at <= now()
                   AND (lease_until IS NULL OR lease_until < now())
                   AND NOT EXISTS (SELECT 1 FROM waiting w
                                   WHERE w.event_id = d.event_id AND w.destination = d.destination)
                 RETURNING event_id, destination, attempts, max_attempts,
                           extract(epoch FROM throttle_slot - now())::float8 AS throttle_slot
             )
             SELECT c.event_id, c.destination, c.attempts, c.max_attempts, c.throttle_slot,
                    e.source, e.payload,
                    (SELECT h->>1 FROM jsonb_array_elements(e.headers) h
                     WHERE h->>0 = 'content-type' LIMIT 1) AS content_type
             FROM claimed c JOIN events e ON e.id = c.event_id",
        )
        .bind(events)
        .bind(lease.as_secs_f64())
        .bind(token)
        .bind(ordered)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed: BTreeMap<Uuid, ClaimedEvent> = BTreeMap::new();
        for row in &rows {
            let event_id: Uuid = row.try_get("event_id")?;
            let delivery = Claimed {
                destination: row.try_get("destination")?,
                attempt: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
                throttle_slot: row.try_get("throttle_slot")?,
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
