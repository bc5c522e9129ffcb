//! Delivery state: what claims and outcomes are made of (the statements are in `claim` and
//! `outcomes`), and what every state change shares.

use super::pipeline::Buried;
use super::requeue::REQUEUE_GRACE;
use sqlx::PgConnection;
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
    /// A throttled destination's slot reserved for this delivery when it was deferred, in
    /// seconds from the claim (negative once past).
    pub throttle_slot: Option<f64>,
}

/// What a claim did.
#[derive(Debug, Default)]
pub struct Claims {
    /// The events with deliveries claimed, each with those deliveries; an event with nothing
    /// claimable (delivered already, not yet due, held by another worker) is not among them.
    pub events: Vec<ClaimedEvent>,
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
    /// Not attempted: its destination's throttle said wait. No attempt is spent; it is claimed
    /// again in `requeue_in`, and then goes at its reserved rate slot, if it has one.
    Throttled {
        requeue_in: Duration,
        slot_in: Option<Duration>,
    },
}

/// How logs say it: `delivered`, `retry in 8.83s`, `dead letter`, `throttled for 1.20s`.
impl std::fmt::Display for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Next::Delivered => f.write_str("delivered"),
            Next::RetryIn(delay) => write!(f, "retry in {:.2}s", delay.as_secs_f64()),
            Next::DeadLetter => f.write_str("dead letter"),
            Next::Throttled { requeue_in, .. } => {
                write!(f, "throttled for {:.2}s", requeue_in.as_secs_f64())
            }
        }
    }
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
    // Planned for this batch's ids: a generic plan estimates `= ANY` of an array parameter at
    // 2.5 % of the table, and at a million pending deliveries scanned whole tables for a batch
    // (perf of the committing backend: ExecEvalHashedScalarArrayOp under a heap scan). Local
    // to the transaction, so statements recorded before it keep their cached plans.
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await?;
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

#[cfg(test)]
mod tests {
    use super::Next;
    use std::time::Duration;

    #[test]
    fn what_happens_next_reads_as_words_in_the_log() {
        assert_eq!(Next::Delivered.to_string(), "delivered");
        assert_eq!(
            Next::RetryIn(Duration::from_millis(8_830)).to_string(),
            "retry in 8.83s"
        );
        assert_eq!(Next::DeadLetter.to_string(), "dead letter");
    }
}
