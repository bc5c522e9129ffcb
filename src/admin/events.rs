//! The status resource: what happened to an event, destination by destination.

use super::Admin;
use super::auth::{Authorized, Read};
use super::error::ApiError;
use super::params::{self, Id, Listing, Page, Params};
use crate::store::Keyset;
use crate::store::received::ReceivedRequest;
use crate::store::status::{DeliveryStatus, EventFilter, EventStatus, EventSummary};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

const STATUSES: [&str; 3] = ["pending", "delivered", "dead_lettered"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    source: Option<String>,
    external_id: Option<String>,
    event_type: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/events`: newest first; `external_id` finds an event by the provider's id,
/// `event_type` lists one type (or, ending in `*`, a family of types).
pub async fn list(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Params(query): Params<ListQuery>,
) -> Result<Json<Listing<EventSummary>>, ApiError> {
    check_status(query.status.as_deref())?;
    let params::Range { since, until } =
        params::range(query.since.as_deref(), query.until.as_deref())?;
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = EventFilter {
        source: params::text("source", query.source)?,
        external_id: params::text("external_id", query.external_id)?,
        event_type: params::event_type(query.event_type)?,
        status: query.status,
        since,
        until,
    };
    let rows = admin
        .store
        .list_events(&filter, page.before, page.fetch())
        .await?;
    Ok(Json(page.listing(rows, |e| Keyset {
        at: e.received_at,
        id: e.id,
    })))
}

/// An event `status` filter must name one.
pub fn check_status(status: Option<&str>) -> Result<(), ApiError> {
    match status {
        Some(status) if !STATUSES.contains(&status) => Err(ApiError::bad(
            "bad-status",
            format!("status={status:?} must be one of {}", STATUSES.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// `GET /v1/events/{id}`, with `Retry-After` while a delivery is still to be attempted: when
/// polling again could show something new.
pub async fn show(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<(HeaderMap, Json<EventStatus>), ApiError> {
    let status = admin
        .store
        .event_status(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    let mut headers = HeaderMap::new();
    if let Some(secs) = retry_after(&status.deliveries, Utc::now()) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok((headers, Json(status)))
}

/// `GET /v1/events/{id}/request`: the request as received, headers and payload.
pub async fn request(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Json<ReceivedRequest>, ApiError> {
    let request = admin.store.received_request(id).await?;
    request
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))
}

/// Seconds until the earliest pending delivery is due (at least 1), `None` when none is pending.
fn retry_after(deliveries: &[DeliveryStatus], now: DateTime<Utc>) -> Option<u64> {
    deliveries
        .iter()
        .filter(|d| EventStatus::is_pending(d))
        .map(|d| {
            d.next_attempt_at.map_or(0, |at| {
                let ms = (at - now).num_milliseconds().max(0) as u64;
                ms.div_ceil(1000)
            })
        })
        .min()
        .map(|secs| secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(state: &str, attempts: i32, due_in_ms: Option<i64>) -> DeliveryStatus {
        let now: DateTime<Utc> = "2026-11-23T08:00:00Z".parse().unwrap();
        DeliveryStatus {
            destination: "d".into(),
            state: state.into(),
            attempts,
            max_attempts: 8,
            next_attempt_at: due_in_ms.map(|ms| now + chrono::Duration::milliseconds(ms)),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            delivered_at: None,
        }
    }

    #[test]
    fn retry_after_points_at_the_earliest_pending_attempt() {
        let now = "2026-11-23T08:00:00Z".parse().unwrap();
        let pending = [
            delivery("delivered", 1, None),
            delivery("pending", 1, Some(95_500)),
            delivery("retrying", 2, Some(30_001)),
        ];
        assert_eq!(retry_after(&pending, now), Some(31));
        assert_eq!(
            retry_after(&[delivery("pending", 0, Some(-5))], now),
            Some(1)
        );
        assert_eq!(retry_after(&[delivery("dead", 8, None)], now), None);
    }
}
