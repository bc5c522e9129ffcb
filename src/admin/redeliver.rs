//! Redelivering one event: sending it again to a consumer that lost it.

use super::Admin;
use super::auth::{Authorized, Replay};
use super::error::ApiError;
use super::params::Id;
use crate::store::redeliver::RedeliverError;
use crate::store::status::EventStatus;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverRequest {
    destinations: Vec<String>,
}

impl From<RedeliverError> for ApiError {
    fn from(error: RedeliverError) -> Self {
        match error {
            RedeliverError::NotFound(_) | RedeliverError::UnknownDestination { .. } => {
                Self::NotFound(error.to_string())
            }
            RedeliverError::Unroutable { .. } => Self::Conflict(error.to_string()),
            RedeliverError::Store(error) => Self::Store(error),
        }
    }
}

/// `POST /v1/events/{id}/redeliver`, with an optional body `{"destinations": [...]}` (every
/// destination of the event without one): 202 with the event's status resource.
pub async fn redeliver(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
    body: Bytes,
) -> Result<(StatusCode, Json<EventStatus>), ApiError> {
    // The body is optional, so it is read by hand: `Json` would refuse an empty one.
    let destinations = match body.is_empty() {
        true => None,
        false => {
            let request: RedeliverRequest = serde_json::from_slice(&body)
                .map_err(|error| ApiError::bad("bad-body", error.to_string()))?;
            Some(request.destinations)
        }
    };
    let (redelivered, enqueued) = admin
        .replayer
        .redeliver(id, destinations.as_deref(), &auth.actor())
        .await?;
    tracing::info!(token = %auth.token, event = %id, destinations = %redelivered.destinations.join(", "), enqueued, "event redelivered");
    let status = admin
        .store
        .event_status(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event {id}")))?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}
