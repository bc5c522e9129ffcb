//! `GET /v1/stream` and `GET /v1/events/{id}/stream`: the live status stream as server-sent
//! events. Each change is one SSE event: `id` its stream position (send it back as
//! `Last-Event-ID` to resume after it), `event` its kind, `data` the change as JSON.

use super::Admin;
use super::auth::{Authorized, Read};
use super::error::ApiError;
use super::params::{self, Id, Params};
use crate::live::{Ended, Filter, Subscription};
use crate::store::transitions::{Change, Position, Scope};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A comment line this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    source: Option<String>,
    destination: Option<String>,
    status: Option<String>,
}

type Events = Sse<axum::response::sse::KeepAliveStream<EventStream>>;
type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// `GET /v1/stream`: every change from now on (or after `Last-Event-ID`), optionally of one
/// source, one destination, or some kinds (`status=attempt_failed,dead_lettered`).
pub async fn all(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Params(query): Params<StreamQuery>,
    headers: HeaderMap,
) -> Result<Events, ApiError> {
    let kinds = match query.status.as_deref() {
        Some(text) => {
            Filter::parse_kinds(text).map_err(|e| ApiError::bad("bad-status", e.to_string()))?
        }
        None => Vec::new(),
    };
    let filter = Filter {
        scope: Scope {
            event_id: None,
            source: params::text("source", query.source)?,
            destination: params::text("destination", query.destination)?,
        },
        kinds,
    };
    let from = match last_event_id(&headers)? {
        Some(position) => position,
        None => admin.hub.now().await?,
    };
    Ok(sse(admin.hub.subscribe(filter, from)))
}

/// `GET /v1/events/{id}/stream`: the event's whole timeline (or what follows
/// `Last-Event-ID`), then its changes as they happen.
pub async fn event(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
    headers: HeaderMap,
) -> Result<Events, ApiError> {
    let from = last_event_id(&headers)?.unwrap_or(Position::START);
    if admin.store.event_status(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no event {id}")));
    }
    let filter = Filter {
        scope: Scope {
            event_id: Some(id),
            ..Scope::default()
        },
        kinds: Vec::new(),
    };
    Ok(sse(admin.hub.subscribe(filter, from)))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<Position>, ApiError> {
    headers
        .get("last-event-id")
        .map(|value| {
            let text = value.to_str().unwrap_or_default();
            text.parse::<Position>()
                .map_err(|e| ApiError::bad("bad-last-event-id", e.to_string()))
        })
        .transpose()
}

fn sse(subscription: Subscription) -> Events {
    let events = futures::stream::unfold(Some(subscription), |state| async move {
        let mut subscription = state?;
        match subscription.next().await {
            Ok(Some(change)) => Some((Ok(sse_event(&change)), Some(subscription))),
            Ok(None) => None,
            // The reason goes out as a last comment line, then the stream ends.
            Err(ended) => {
                if let Ended::FellBehind = ended {
                    metrics::counter!("hookgate_stream_dropped_total").increment(1);
                }
                Some((Ok(Event::default().comment(ended.to_string())), None))
            }
        }
    });
    let events: EventStream = Box::pin(events);
    Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
}

fn sse_event(change: &Change) -> Event {
    Event::default()
        .id(change.position.to_string())
        .event(change.kind.as_str())
        .json_data(change)
        .expect("a change serializes to JSON")
}
