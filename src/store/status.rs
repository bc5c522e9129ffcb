//! What happened to an event: the status resource operators and internal services read.

use super::{Keyset, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventSummary {
    pub id: Uuid,
    pub source: String,
    pub external_id: String,
    /// The provider's event type; `None` when the webhook named none.
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DeliveryStatus {
    pub destination: String,
    /// `pending` (not tried yet), `retrying` (pending after a failed attempt), `delivered` or
    /// `dead`: the difference between pending and retrying is what on-call cares about.
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    /// When the next attempt is due; only while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AttemptRecord {
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventStatus {
    #[serde(flatten)]
    pub event: EventSummary,
    pub deliveries: Vec<DeliveryStatus>,
    /// Dead letters this event produced, oldest first.
    pub dead_letters: Vec<DeadLetterLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterLink {
    pub id: Uuid,
    /// Where the admin API shows it.
    pub href: String,
}

impl EventStatus {
    /// Whether a delivery is still to be attempted.
    pub fn is_pending(delivery: &DeliveryStatus) -> bool {
        matches!(delivery.state.as_str(), "pending" | "retrying")
    }
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub source: Option<String>,
    /// The provider's id, matched exactly.
    pub external_id: Option<String>,
    /// A type, matched exactly, or a prefix ending in `*` (`invoice.*`).
    pub event_type: Option<String>,
    pub status: Option<String>,
    /// Inclusive, on `received_at`.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive, on `received_at`.
    pub until: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn event_status(&self, id: Uuid) -> Result<Option<EventStatus>, StoreError> {
        let event: Option<EventSummary> = sqlx::query_as(
            "SELECT id, source, external_id, event_type, received_at, status FROM events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(event) = event else {
            return Ok(None);
        };
        let deliveries = sqlx::query_as(
            "SELECT destination,
                    CASE WHEN state = 'pending' AND attempts > 0 THEN 'retrying'
                         ELSE state END AS state,
                    attempts, max_attempts,
                    CASE WHEN state = 'pending' THEN next_attempt_at END AS next_attempt_at,
                    last_attempt_at, last_status, last_error, delivered_at
             FROM deliveries WHERE event_id = $1 ORDER BY destination",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let dead_letters: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM dead_letters WHERE event_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let dead_letters = dead_letters
            .into_iter()
            .map(|id| DeadLetterLink {
                id,
                href: format!("/v1/dead-letters/{id}"),
            })
            .collect();
        Ok(Some(EventStatus {
            event,
            deliveries,
            dead_letters,
        }))
    }

    /// Newest first, at most `limit`, strictly older than `before` when given.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        before: Option<Keyset>,
        limit: u32,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(
            "SELECT id, source, external_id, event_type, received_at, status FROM events WHERE TRUE",
        );
        if let Some(source) = &filter.source {
            query.push(" AND source = ").push_bind(source.clone());
        }
        if let Some(external_id) = &filter.external_id {
            query
                .push(" AND external_id = ")
                .push_bind(external_id.clone());
        }
        if let Some(event_type) = &filter.event_type {
            match event_type.strip_suffix('*') {
                Some(prefix) => push_prefix(&mut query, prefix),
                None => {
                    query
                        .push(" AND event_type = ")
                        .push_bind(event_type.clone());
                }
            }
        }
        if let Some(status) = &filter.status {
            query.push(" AND status = ").push_bind(status.clone());
        }
        if let Some(since) = filter.since {
            query.push(" AND received_at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND received_at < ").push_bind(until);
        }
        if let Some(before) = before {
            query
                .push(" AND (received_at, id) < (")
                .push_bind(before.at)
                .push(", ")
                .push_bind(before.id)
                .push(")");
        }
        query
            .push(" ORDER BY received_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        Ok(query.build_query_as().fetch_all(self.pool()).await?)
    }

    /// Every recorded attempt of one delivery, in order.
    pub async fn attempts(
        &self,
        event_id: Uuid,
        destination: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT attempt, status_code, error, duration_ms, at FROM delivery_attempts
             WHERE event_id = $1 AND destination = $2 ORDER BY attempt, id",
        )
        .bind(event_id)
        .bind(destination)
        .fetch_all(self.pool())
        .await?)
    }
}

/// Types starting with `prefix`, as a range of the byte-wise (`text_pattern_ops`) order: unlike
/// LIKE, a range with bound parameters is still an index range in a generic plan, and it has
/// no wildcards to escape.
fn push_prefix(query: &mut QueryBuilder<Postgres>, prefix: &str) {
    if !prefix.is_empty() {
        query
            .push(" AND event_type ~>=~ ")
            .push_bind(prefix.to_string());
    }
    match prefix_end(prefix) {
        Some(end) => query.push(" AND event_type ~<~ ").push_bind(end),
        None => query.push(" AND event_type IS NOT NULL"),
    };
}

/// The least text above every text starting with `prefix`: its last character that has a
/// successor, moved up by one (UTF-8 orders bytes as it orders code points). `None`: no
/// bound, every text above `prefix` starts with it.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut head = prefix.to_string();
    while let Some(last) = head.pop() {
        if let Some(next) = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32) {
            head.push(next);
            return Some(head);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_at_its_last_character_moved_up() {
        assert_eq!(prefix_end("invoice.").as_deref(), Some("invoice/"));
        assert_eq!(prefix_end("a_").as_deref(), Some("a`"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
    }
}
