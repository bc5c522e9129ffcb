//! Reading `event_transitions` in commit order, for the live status stream.
//!
//! A reader takes only rows whose writing transaction is older than every transaction still
//! running (the `xmin` of its snapshot), ordered by `(txid, id)`: ids come from a sequence
//! before commit, so going by id alone would skip an id that commits after a higher one. Below
//! `xmin` nothing can still appear, so a position once read is final. The price: a change
//! shows only once every transaction that started before it has ended.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The oldest transaction still running (or the next to start): every transaction below it
/// has committed or rolled back.
macro_rules! xmin {
    () => {
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin"
    };
}

/// Where a reader stands: after every change at or before it. Sent as the SSE `id`
/// (`<txid>-<id>`) and taken back from `Last-Event-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    txid: i64,
    id: i64,
}

impl Position {
    /// Before every change, including those written before the stream existed (no txid).
    pub const START: Self = Self { txid: 0, id: 0 };

    /// After every change of the transactions older than `xmin`.
    fn below(xmin: i64) -> Self {
        Self {
            txid: xmin - 1,
            id: i64::MAX,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.txid, self.id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a stream position (an `id` this stream sent, like 7401-1186)")]
pub struct BadPosition(pub String);

impl FromStr for Position {
    type Err = BadPosition;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(text.to_string());
        let (txid, id) = text.trim().split_once('-').ok_or_else(bad)?;
        let txid: i64 = txid.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        match txid >= 0 && id >= 0 {
            true => Ok(Self { txid, id }),
            false => Err(bad()),
        }
    }
}

/// What a change was, named for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Received,
    AttemptFailed,
    Delivered,
    DeadLettered,
    Replayed,
    Redelivered,
}

impl Kind {
    pub const ALL: [Self; 6] = [
        Self::Received,
        Self::AttemptFailed,
        Self::Delivered,
        Self::DeadLettered,
        Self::Replayed,
        Self::Redelivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::AttemptFailed => "attempt_failed",
            Self::Delivered => "delivered",
            Self::DeadLettered => "dead_lettered",
            Self::Replayed => "replayed",
            Self::Redelivered => "redelivered",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// From a transition row's states (see migrations 0002, 0007 and 0017).
    fn of(from: Option<&str>, to: &str) -> Self {
        match (from, to) {
            (None, _) => Self::Received,
            (_, "delivered") => Self::Delivered,
            (_, "dead" | "dead_lettered") => Self::DeadLettered,
            (Some("pending"), _) => Self::AttemptFailed,
            (Some("delivered"), _) => Self::Redelivered,
            _ => Self::Replayed,
        }
    }
}

/// One change of an event (`destination` null) or of one of its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    #[serde(rename = "id", serialize_with = "display")]
    pub position: Position,
    pub kind: Kind,
    pub event_id: Uuid,
    pub source: String,
    pub destination: Option<String>,
    /// The state before; null for `received`.
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
    /// Attempts made so far (deliveries only).
    pub attempt: Option<i32>,
    /// The last attempt's HTTP status, if it got one.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// When the next attempt is due, while the delivery is pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

fn display<S: serde::Serializer>(value: &Position, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

#[derive(sqlx::FromRow)]
struct Row {
    txid: i64,
    id: i64,
    event_id: Uuid,
    source: String,
    destination: Option<String>,
    from_state: Option<String>,
    to_state: String,
    reason: String,
    attempt: Option<i32>,
    status_code: Option<i32>,
    error: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
    xmin: i64,
}

impl From<Row> for Change {
    fn from(r: Row) -> Self {
        Self {
            position: Position {
                txid: r.txid,
                id: r.id,
            },
            kind: Kind::of(r.from_state.as_deref(), &r.to_state),
            event_id: r.event_id,
            source: r.source,
            destination: r.destination,
            from: r.from_state,
            to: r.to_state,
            reason: r.reason,
            attempt: r.attempt,
            status_code: r.status_code,
            error: r.error,
            next_attempt_at: r.next_attempt_at,
            at: r.at,
        }
    }
}

/// Which changes a reader wants from the database; the rest of a filter is applied on the
/// changes read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub event_id: Option<Uuid>,
    pub source: Option<String>,
    pub destination: Option<String>,
}

/// Changes after a position, in order.
#[derive(Debug)]
pub struct Page {
    pub changes: Vec<Change>,
    /// Where the next read starts: past the last change, and, once nothing more is final,
    /// past every change of the transactions older than the rows' snapshot's `xmin`; where
    /// the read started when it found nothing.
    pub next: Position,
    /// Whether changes were left for the next read (the page was full).
    pub more: bool,
}

impl Page {
    fn new(rows: Vec<Row>, after: Position, limit: i64) -> Self {
        let more = rows.len() as i64 == limit;
        // Only the rows' own snapshot may move the position past them to its xmin: a later
        // snapshot's xmin could pass a change that committed after these rows were read.
        let xmin = rows.first().map(|r| r.xmin);
        let changes: Vec<Change> = rows.into_iter().map(Change::from).collect();
        let next = match (changes.last(), xmin) {
            (Some(last), _) if more => last.position,
            (Some(last), Some(xmin)) => last.position.max(Position::below(xmin)),
            _ => after,
        };
        Self {
            changes,
            next,
            more,
        }
    }
}

impl Store {
    /// The position after every change that is final now: where a reader that wants only
    /// what happens from now on starts.
    pub async fn stream_now(&self) -> Result<Position, StoreError> {
        let xmin: i64 = sqlx::query_scalar(xmin!()).fetch_one(&self.pool).await?;
        Ok(Position::below(xmin))
    }

    /// Up to `limit` final changes in `scope` after `after`, in order.
    pub async fn changes_after(
        &self,
        after: Position,
        scope: &Scope,
        limit: i64,
    ) -> Result<Page, StoreError> {
        // The xmin is read in the same statement, hence from the same snapshot as the rows.
        let rows: Vec<Row> = match scope.event_id {
            // One event's few rows, by its index; rows from before 0017 have no txid and
            // come first.
            Some(event_id) => {
                sqlx::query_as(concat!(
                    "WITH snapshot AS (",
                    xmin!(),
                    ")
                     SELECT coalesce(t.txid, 0) AS txid, t.id, t.event_id, e.source,
                            t.destination, t.from_state, t.to_state, t.reason, t.attempt,
                            t.status_code, t.error, t.next_attempt_at, t.at, s.xmin
                     FROM event_transitions t JOIN events e ON e.id = t.event_id, snapshot s
                     WHERE t.event_id = $1 AND coalesce(t.txid, 0) < s.xmin
                       AND (coalesce(t.txid, 0), t.id) > ($2, $3)
                     ORDER BY 1, t.id
                     LIMIT $4"
                ))
                .bind(event_id)
                .bind(after.txid)
                .bind(after.id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(concat!(
                    "WITH snapshot AS (",
                    xmin!(),
                    ")
                     SELECT t.txid, t.id, t.event_id, e.source, t.destination, t.from_state,
                            t.to_state, t.reason, t.attempt, t.status_code, t.error,
                            t.next_attempt_at, t.at, s.xmin
                     FROM event_transitions t JOIN events e ON e.id = t.event_id, snapshot s
                     WHERE (t.txid, t.id) > ($1, $2) AND t.txid < s.xmin
                       AND ($3::text IS NULL OR e.source = $3)
                       AND ($4::text IS NULL OR t.destination = $4)
                     ORDER BY t.txid, t.id
                     LIMIT $5"
                ))
                .bind(after.txid)
                .bind(after.id)
                .bind(scope.source.as_deref())
                .bind(scope.destination.as_deref())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(Page::new(rows, after, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_order_by_transaction_first() {
        let p: Position = "7401-1186".parse().unwrap();
        assert_eq!(p.to_string(), "7401-1186");
        assert!(p < "7402-5".parse().unwrap());
        assert!(p > "7401-1185".parse().unwrap());
        for bad in ["", "7401", "a-1", "1-b", "-1-2", "1--2"] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
        assert!(Position::below(7402) > p);
        assert!(Position::below(7401) < p);
    }

    #[test]
    fn kinds_follow_the_states() {
        assert_eq!(Kind::of(None, "pending"), Kind::Received);
        assert_eq!(Kind::of(Some("pending"), "pending"), Kind::AttemptFailed);
        assert_eq!(Kind::of(Some("pending"), "dead"), Kind::DeadLettered);
        assert_eq!(
            Kind::of(Some("pending"), "dead_lettered"),
            Kind::DeadLettered
        );
        assert_eq!(Kind::of(Some("dead"), "pending"), Kind::Replayed);
        assert_eq!(Kind::of(Some("dead_lettered"), "pending"), Kind::Replayed);
        assert_eq!(Kind::of(Some("delivered"), "pending"), Kind::Redelivered);
        assert_eq!(Kind::of(Some("pending"), "delivered"), Kind::Delivered);
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
    }
}
