//! Recording outcomes: the attempts of many claims, their deliveries' new states, their dead
//! letters, their events' statuses and their destinations' breakers, in one transaction.

use super::breaker::Tallies;
use super::deliveries::{Attempt, ClaimedEvent, FailureKind, Next, settle_events, storable};
use super::ordered::{self, Enqueue};
use super::rules::{self, Rules};
use super::{Store, StoreError};
use std::collections::HashSet;
use uuid::Uuid;

/// The attempts one claim made.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub event: &'a ClaimedEvent,
    pub attempts: &'a [Attempt],
}

/// One attempt as a row of the recording statement.
struct Row<'a> {
    event_id: Uuid,
    destination: &'a str,
    lease_token: Uuid,
    state: &'static str,
    reason: String,
    status: Option<i32>,
    error: Option<String>,
    retry_in: Option<f64>,
    /// Not attempted: the throttle deferred it (see [`Next::Throttled`]).
    throttled: bool,
    slot_in: Option<f64>,
    attempt: i32,
    duration_ms: i32,
    failure_kind: Option<&'static str>,
}

impl<'a> Row<'a> {
    fn new(event: &ClaimedEvent, a: &'a Attempt) -> Self {
        let (state, reason, retry_in) = match (a.next, &a.failure) {
            (Next::Delivered, _) => ("delivered", "delivered".to_string(), None),
            (Next::RetryIn(delay), _) => (
                "pending",
                "retry scheduled".to_string(),
                Some(delay.as_secs_f64()),
            ),
            (Next::DeadLetter, Some((FailureKind::Pipeline, e))) => {
                ("dead", storable(e).into_owned(), None)
            }
            (Next::DeadLetter, _) => ("dead", format!("attempts exhausted ({})", a.attempt), None),
            (Next::Throttled { requeue_in, .. }, _) => (
                "pending",
                "throttled".to_string(),
                Some(requeue_in.as_secs_f64()),
            ),
        };
        let (throttled, slot_in) = match a.next {
            Next::Throttled { slot_in, .. } => (true, slot_in.map(|s| s.as_secs_f64())),
            _ => (false, None),
        };
        Self {
            event_id: event.event_id,
            destination: &a.destination,
            lease_token: event.lease_token,
            state,
            reason,
            status: a.status_code.map(i32::from),
            error: a.failure.as_ref().map(|(_, e)| storable(e).into_owned()),
            retry_in,
            throttled,
            slot_in,
            attempt: a.attempt,
            duration_ms: i32::try_from(a.duration.as_millis()).unwrap_or(i32::MAX),
            // Only a failed last attempt leaves a dead letter.
            failure_kind: match (a.next, &a.failure) {
                (Next::DeadLetter, Some((kind, _))) => Some(kind.as_str()),
                _ => None,
            },
        }
    }
}

/// One column of `rows`, as a statement's array parameter.
fn column<'r, T>(rows: &'r [Row], field: impl Fn(&'r Row) -> T) -> Vec<T> {
    rows.iter().map(field).collect()
}

impl Store {
    /// Records the attempts of `outcomes` and settles their events' statuses, in one
    /// transaction. A delivery whose lease was lost meanwhile (its worker was too slow and
    /// another took over) is left to its new owner, and counts for no breaker. Returns the
    /// events (with their sources) whose ordered destination's next delivery it let go: the
    /// caller puts them on their streams once this returns.
    pub async fn record(
        &self,
        outcomes: &[Outcome<'_>],
        rules: &Rules,
    ) -> Result<Vec<(String, Uuid)>, StoreError> {
        let mut rows: Vec<Row> = outcomes
            .iter()
            .flat_map(|o| o.attempts.iter().map(|a| Row::new(o.event, a)))
            .collect();
        // Rows are locked in key order, so concurrent recorders cannot deadlock on them.
        rows.sort_by(|a, b| (a.event_id, a.destination).cmp(&(b.event_id, b.destination)));
        let dead_letters: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
        let mut tx = self.pool.begin().await?;
        // Each attempt is recorded by the statement that settles its delivery, and only if
        // this worker still holds the lease.
        let settled: Vec<(Uuid, String, bool)> = sqlx::query_as(
            "WITH input AS (
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                                      $6::int4[], $7::text[], $8::float8[], $9::int4[],
                                      $10::int4[], $11::text[], $12::uuid[], $13::bool[],
                                      $14::float8[])
                     AS i (event_id, destination, lease_token, state, reason, status, error,
                           retry_in, attempt, duration_ms, failure_kind, dead_letter,
                           throttled, slot_in)
             ), settled AS (
                 -- A throttled delivery was not attempted: it gets its claim's attempt back and
                 -- keeps the last real attempt's result.
                 UPDATE deliveries d
                 SET state = i.state, reason = i.reason, lease_until = NULL, lease_token = NULL,
                     attempts = d.attempts - i.throttled::int,
                     first_attempt_at = CASE WHEN i.throttled AND d.attempts = 1 THEN NULL
                                             ELSE d.first_attempt_at END,
                     last_status = CASE WHEN i.throttled THEN d.last_status ELSE i.status END,
                     last_error = CASE WHEN i.throttled THEN d.last_error ELSE i.error END,
                     throttle_slot = now() + make_interval(secs => i.slot_in),
                     next_attempt_at = CASE WHEN i.retry_in IS NULL THEN d.next_attempt_at
                                            ELSE now() + make_interval(secs => i.retry_in) END,
                     requeue_at = CASE WHEN i.retry_in IS NOT NULL
                                       THEN now() + make_interval(secs => i.retry_in) END,
                     requeue_check = false,
                     delivered_at = CASE WHEN i.state = 'delivered' THEN now() END
                 FROM input i
                 WHERE d.event_id = i.event_id AND d.destination = i.destination
                   AND d.lease_token = i.lease_token
                 RETURNING d.event_id, d.destination, d.attempts, d.last_status, d.last_error,
                           d.first_attempt_at, d.last_attempt_at, i.attempt, i.duration_ms,
                           i.failure_kind, i.dead_letter, i.throttled
             ), attempts AS (
                 INSERT INTO delivery_attempts
                     (event_id, destination, attempt, status_code, error, duration_ms)
                 SELECT event_id, destination, attempt, last_status, last_error, duration_ms
                 FROM settled WHERE NOT throttled
             ), dead AS (
                 INSERT INTO dead_letters
                     (id, event_id, source, destination, payload, attempts, last_error,
                      last_status, failure_kind, first_attempt_at, last_attempt_at)
                 SELECT s.dead_letter, e.id, e.source, s.destination, e.payload, s.attempts,
                        s.last_error, s.last_status, s.failure_kind, s.first_attempt_at,
                        s.last_attempt_at
                 FROM settled s JOIN events e ON e.id = s.event_id
                 WHERE s.failure_kind IS NOT NULL
             )
             SELECT event_id, destination, failure_kind IS NOT NULL FROM settled",
        )
        .bind(column(&rows, |r| r.event_id))
        .bind(column(&rows, |r| r.destination))
        .bind(column(&rows, |r| r.lease_token))
        .bind(column(&rows, |r| r.state))
        .bind(column(&rows, |r| r.reason.as_str()))
        .bind(column(&rows, |r| r.status))
        .bind(column(&rows, |r| r.error.as_deref()))
        .bind(column(&rows, |r| r.retry_in))
        .bind(column(&rows, |r| r.attempt))
        .bind(column(&rows, |r| r.duration_ms))
        .bind(column(&rows, |r| r.failure_kind))
        .bind(&dead_letters)
        .bind(column(&rows, |r| r.throttled))
        .bind(column(&rows, |r| r.slot_in))
        .fetch_all(&mut *tx)
        .await?;
        let owned: HashSet<(Uuid, &str)> =
            (settled.iter()).map(|(e, d, _)| (*e, d.as_str())).collect();
        for row in &rows {
            if !owned.contains(&(row.event_id, row.destination)) {
                tracing::warn!(event = %row.event_id, destination = %row.destination, "lease lost before the outcome was recorded; the new owner decides");
            }
        }
        let mut tallies = Tallies::default();
        for outcome in outcomes {
            for attempt in outcome.attempts {
                if owned.contains(&(outcome.event.event_id, attempt.destination.as_str())) {
                    tallies.add(&outcome.event.source, attempt);
                }
            }
        }
        tallies.apply(&mut tx, &rules.breakers).await?;
        // An ordered destination whose delivery has ended lets the next one go.
        let mut ended: Vec<String> = Vec::new();
        // Most gateways have no ordered destination: no key is built for them.
        let attempts = (outcomes.iter()).flat_map(|o| o.attempts.iter().map(move |a| (o, a)));
        for (outcome, attempt) in attempts.take_while(|_| !rules.ordered.is_empty()) {
            let owned = owned.contains(&(outcome.event.event_id, attempt.destination.as_str()));
            let ends = matches!(attempt.next, Next::Delivered | Next::DeadLetter);
            let key = || rules::ordered_key(&outcome.event.source, &attempt.destination);
            if owned && ends && rules.ordered.contains(&key()) {
                ended.push(key());
            }
        }
        let released = ordered::release_next(&mut tx, &ended, Enqueue::ByCaller).await?;
        let mut events: Vec<Uuid> = outcomes.iter().map(|o| o.event.event_id).collect();
        events.sort_unstable();
        events.dedup();
        settle_events(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(released)
    }
}
