//! Delivery state: claiming due deliveries, recording attempts, finding due work.

use super::pipeline::Buried;
use super::requeue::REQUEUE_GRACE;
use super::{Store, StoreError};
use sqlx::{PgConnection, Row};
use std::borrow::Cow;
use std::time::Duration;
use uuid::Uuid;

/// The most of an error text kept in Postgres, in bytes.
const ERROR_TEXT_LIMIT: usize = 2048;

/// A due delivery this worker now owns until its lease ends.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub destination: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    pub max_attempts: i32,
}

/// What a claim did.
#[derive(Debug, Default)]
pub struct Claim {
    /// The deliveries claimed, with their event; `None` when nothing was claimable.
    pub event: Option<ClaimedEvent>,
    /// Deliveries dead-lettered instead, their attempt budget spent
    /// ([`SPENT`](super::pipeline::SPENT)).
    pub spent: Vec<Buried>,
}

/// An event with the deliveries claimed from it.
#[derive(Debug)]
pub struct ClaimedEvent {
    pub event_id: Uuid,
    pub source: String,
    pub payload: Vec<u8>,
    pub content_type: Option<String>,
    /// Proves ownership when the outcome is recorded.
    pub lease_token: Uuid,
    pub deliveries: Vec<Claimed>,
}

/// Why an attempt failed, as operators need to tell "the destination said no" from "we broke".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The destination answered, but not 2xx.
    Rejected,
    Timeout,
    /// The destination could not be reached.
    Connection,
    /// hookgate itself failed, e.g. the destination is no longer configured.
    Pipeline,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Pipeline => "pipeline",
        }
    }
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub destination: String,
    pub attempt: i32,
    pub duration: Duration,
    pub status_code: Option<u16>,
    /// `None` on success.
    pub failure: Option<(FailureKind, String)>,
    pub next: Next,
}

/// What happens to the delivery after this attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Delivered,
    RetryIn(Duration),
    DeadLetter,
}

/// `text` as a Postgres `text` value takes it: NUL (refused there) becomes U+FFFD, and at most
/// [`ERROR_TEXT_LIMIT`] bytes are kept, cut at a character boundary and marked with `…`.
/// Error texts come from destinations and libraries, so anything may be in them.
pub fn storable(text: &str) -> Cow<'_, str> {
    let text = match text.contains('\0') {
        true => Cow::Owned(text.replace('\0', "\u{FFFD}")),
        false => Cow::Borrowed(text),
    };
    if text.len() <= ERROR_TEXT_LIMIT {
        return text;
    }
    let mut end = ERROR_TEXT_LIMIT - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

impl Store {
    /// Claims every due, unleased, pending delivery of `event_id` for `lease`, counting the
    /// attempt now: a worker that dies mid-delivery still used up that attempt. A delivery
    /// whose attempts are used up is not claimed again but dead-lettered: its last claims
    /// ended without an outcome, so a message that crashes workers, or whose outcome cannot be
    /// recorded, is tried `max_attempts` times, not forever.
    pub async fn claim(&self, event_id: Uuid, lease: Duration) -> Result<Claim, StoreError> {
        let spent = self.bury_spent(event_id).await?;
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
                 WHERE event_id = $1 AND state = 'pending' AND attempts < max_attempts
                   -- Written so that no index can serve it: the planner must find the rows
                   -- by event id (primary key). As an index condition it made fresh tables
                   -- scan every due delivery per claim through deliveries_due, O(backlog).
                   AND next_attempt_at - now() <= interval '0'
                   AND (lease_until IS NULL OR lease_until < now())
                 RETURNING destination, attempts, max_attempts
             )
             SELECT c.destination, c.attempts, c.max_attempts, e.source, e.payload,
                    (SELECT h->>1 FROM jsonb_array_elements(e.headers) h
                     WHERE h->>0 = 'content-type' LIMIT 1) AS content_type
             FROM claimed c JOIN events e ON e.id = $1",
        )
        .bind(event_id)
        .bind(lease.as_secs_f64())
        .bind(token)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(Claim { event: None, spent });
        };
        let event = ClaimedEvent {
            event_id,
            source: first.try_get("source")?,
            payload: first.try_get("payload")?,
            content_type: first.try_get("content_type")?,
            lease_token: token,
            deliveries: rows
                .iter()
                .map(|r| {
                    Ok(Claimed {
                        destination: r.try_get("destination")?,
                        attempt: r.try_get("attempts")?,
                        max_attempts: r.try_get("max_attempts")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?,
        };
        Ok(Claim {
            event: Some(event),
            spent,
        })
    }

    /// Records the attempts of one claim and settles the event's status, in one transaction.
    /// A delivery whose lease was lost meanwhile (this worker was too slow and another took
    /// over) is left to its new owner. Returns how many dead letters were written.
    pub async fn record(
        &self,
        event: &ClaimedEvent,
        attempts: &[Attempt],
    ) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut dead = 0;
        for a in attempts {
            let error = a.failure.as_ref().map(|(_, e)| storable(e));
            let status = a.status_code.map(i32::from);
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
                (Next::DeadLetter, _) => {
                    ("dead", format!("attempts exhausted ({})", a.attempt), None)
                }
            };
            // The attempt is recorded by the same statement that settles the delivery, and
            // only if this worker still holds its lease.
            let owned = sqlx::query(
                "WITH settled AS (
                     UPDATE deliveries
                     SET state = $4, reason = $5, lease_until = NULL, lease_token = NULL,
                         last_status = $6, last_error = $7,
                         next_attempt_at = CASE WHEN $8::float8 IS NULL THEN next_attempt_at
                                                ELSE now() + make_interval(secs => $8) END,
                         requeue_at = CASE WHEN $8::float8 IS NOT NULL
                                           THEN now() + make_interval(secs => $8) END,
                         requeue_check = false,
                         delivered_at = CASE WHEN $4 = 'delivered' THEN now() END
                     WHERE event_id = $1 AND destination = $2 AND lease_token = $3
                     RETURNING event_id, destination
                 )
                 INSERT INTO delivery_attempts
                     (event_id, destination, attempt, status_code, error, duration_ms)
                 SELECT event_id, destination, $9, $6, $7, $10 FROM settled",
            )
            .bind(event.event_id)
            .bind(&a.destination)
            .bind(event.lease_token)
            .bind(state)
            .bind(&reason)
            .bind(status)
            .bind(error.as_deref())
            .bind(retry_in)
            .bind(a.attempt)
            .bind(i32::try_from(a.duration.as_millis()).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if owned == 0 {
                tracing::warn!(event = %event.event_id, destination = %a.destination, "lease lost before the outcome was recorded; the new owner decides");
                continue;
            }
            if let (Next::DeadLetter, Some((kind, _))) = (a.next, &a.failure) {
                sqlx::query(
                    "INSERT INTO dead_letters
                         (id, event_id, source, destination, payload, attempts, last_error,
                          last_status, failure_kind, first_attempt_at, last_attempt_at)
                     SELECT $1, e.id, e.source, d.destination, e.payload, d.attempts,
                            d.last_error, d.last_status, $4, d.first_attempt_at, d.last_attempt_at
                     FROM deliveries d JOIN events e ON e.id = d.event_id
                     WHERE d.event_id = $2 AND d.destination = $3",
                )
                .bind(Uuid::now_v7())
                .bind(event.event_id)
                .bind(&a.destination)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?;
                dead += 1;
            }
        }
        settle_events(&mut tx, &[event.event_id]).await?;
        tx.commit().await?;
        Ok(dead)
    }
}

/// An event is delivered once every delivery is, dead-lettered once none is pending and one
/// is dead, pending otherwise. The trigger audits the change.
///
/// The event rows are locked first, in id order, and the status computed by the next
/// statement: two transactions recording sibling deliveries of one event would otherwise each
/// see the other's delivery still pending, and leave the event pending forever. The second
/// waits for the first to commit, and its fresh snapshot sees both.
pub(super) async fn settle_events(
    conn: &mut PgConnection,
    events: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT id FROM events WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(events)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE events e SET status = s.status
         FROM (SELECT event_id,
                      CASE WHEN bool_or(state = 'pending') THEN 'pending'
                           WHEN bool_or(state = 'dead') THEN 'dead_lettered'
                           ELSE 'delivered' END AS status
               FROM deliveries WHERE event_id = ANY($1) GROUP BY event_id) s
         WHERE e.id = s.event_id AND e.status <> s.status",
    )
    .bind(events)
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts each `(event, destination)` delivery that is in one of the states `from` back to
/// pending, due now, with `budgets` more attempts, for `reason` (replay and redelivery). Rows
/// are locked in key order, so concurrent revivals cannot deadlock on them. Returns each
/// revived delivery with the state it left.
pub(super) async fn revive(
    tx: &mut PgConnection,
    events: &[Uuid],
    destinations: &[&str],
    budgets: &[i32],
    from: &[&str],
    reason: &str,
) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "WITH wanted AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::int4[])
                 AS w (event_id, destination, budget)
         ), locked AS (
             SELECT d.event_id, d.destination, d.state, w.budget
             FROM deliveries d JOIN wanted w USING (event_id, destination)
             WHERE d.state = ANY($4)
             ORDER BY d.event_id, d.destination
             FOR UPDATE OF d
         )
         UPDATE deliveries d
         SET state = 'pending',
             reason = $5,
             max_attempts = d.attempts + l.budget,
             next_attempt_at = now(),
             -- The caller enqueues the events; the scheduler does after the grace should
             -- that fail (or they still wait then, behind a backlog: a harmless repeat).
             requeue_at = now() + make_interval(secs => $6),
             requeue_check = false,
             lease_until = NULL,
             lease_token = NULL
         FROM locked l
         WHERE d.event_id = l.event_id AND d.destination = l.destination
         RETURNING d.event_id, d.destination, l.state",
    )
    .bind(events)
    .bind(destinations)
    .bind(budgets)
    .bind(from)
    .bind(reason)
    .bind(REQUEUE_GRACE.as_secs_f64())
    .fetch_all(tx)
    .await
}
