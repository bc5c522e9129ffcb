//! Ordered destinations (`ordered = true`): one delivery at a time, in event id (arrival)
//! order. A claim parks every delivery that is not its destination's head (see `claim`); this
//! puts the next one back once nothing of the destination is pending but parked ones.

use super::requeue::REQUEUE_GRACE;
use super::{Store, StoreError};
use sqlx::PgConnection;
use uuid::Uuid;

/// Who puts a released delivery's event on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Enqueue {
    /// The caller, after its transaction commits; the scheduler checks after a grace.
    ByCaller,
    /// The scheduler, at its next tick.
    ByScheduler,
}

/// Of the ordered destinations `keys` (`source/destination`), those neither paused nor held
/// by their breaker and with no delivery pending but parked ones get their first parked
/// delivery (in event id order) made due. Returns the released events with their sources.
pub(super) async fn release_next(
    conn: &mut PgConnection,
    keys: &[String],
    enqueue: Enqueue,
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let by_caller = enqueue == Enqueue::ByCaller;
    sqlx::query_as(
        "WITH pairs AS (
             SELECT DISTINCT split_part(k, '/', 1) AS source, split_part(k, '/', 2) AS destination
             FROM unnest($1::text[]) k
         ), stalled AS (
             SELECT p.source, p.destination FROM pairs p
             WHERE NOT EXISTS (SELECT 1 FROM destinations g
                               WHERE g.source = p.source AND g.destination = p.destination
                                 AND (g.paused OR g.state <> 'closed'))
               AND NOT EXISTS (SELECT 1 FROM deliveries d JOIN events e ON e.id = d.event_id
                               WHERE d.state = 'pending' AND d.destination = p.destination
                                 AND e.source = p.source
                                 AND d.requeue_at IS DISTINCT FROM 'infinity')
         ), next AS (
             SELECT s.source, w.event_id, w.destination FROM stalled s CROSS JOIN LATERAL (
                 -- Through deliveries_waiting (0013), in event id order.
                 SELECT d.event_id, d.destination
                 FROM deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.state = 'pending' AND d.requeue_at = 'infinity'
                   AND d.destination = s.destination AND e.source = s.source
                 ORDER BY d.event_id LIMIT 1
             ) w
         )
         UPDATE deliveries d
         SET requeue_at = CASE WHEN $2 THEN now() + make_interval(secs => $3) ELSE now() END,
             requeue_check = $2
         FROM next n
         WHERE d.event_id = n.event_id AND d.destination = n.destination
           AND d.state = 'pending' AND d.requeue_at = 'infinity'
         RETURNING n.source, d.event_id",
    )
    .bind(keys)
    .bind(by_caller)
    .bind(REQUEUE_GRACE.as_secs_f64())
    .fetch_all(conn)
    .await
}

impl Store {
    /// The scheduler's net under [`release_next`]: an ordered destination whose head ended
    /// other than by a recorded outcome (dead-lettered as spent or unrouted, say) has its next
    /// delivery put back within a tick.
    pub async fn release_ordered(&self, keys: &[String]) -> Result<usize, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(release_next(&mut conn, keys, Enqueue::ByScheduler)
            .await?
            .len())
    }
}
