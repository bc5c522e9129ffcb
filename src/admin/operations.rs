//! Bulk replay as a long-running operation: `202 Accepted` and a resource to poll, since
//! replaying 100,000 dead letters outlives any HTTP request. `crate::operations` runs them.

use super::Admin;
use super::auth::{Authorized, Read, Replay};
use super::error::ApiError;
use super::params::{self, Body, Id};
use crate::store::operations::{Operation, OperationFilter};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// How soon to poll a running operation again.
const POLL_AFTER_SECS: u64 = 2;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    source: Option<String>,
    destination: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Required when no filter is given: replaying every dead letter is never an accident.
    #[serde(default)]
    all: bool,
}

#[derive(Serialize)]
pub struct OperationView {
    #[serde(flatten)]
    operation: Operation,
    href: String,
}

impl From<Operation> for OperationView {
    fn from(operation: Operation) -> Self {
        let href = format!("/v1/operations/{}", operation.id);
        Self { operation, href }
    }
}

/// `POST /v1/dead-letters/replay`: 202 with `Location` of the operation.
pub async fn start_replay(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Body(request): Body<ReplayRequest>,
) -> Result<Response, ApiError> {
    // Ages become absolute times now, so a resumed operation selects the same dead letters.
    let params::Range { since, until } =
        params::range(request.since.as_deref(), request.until.as_deref())?;
    let filter = OperationFilter {
        source: params::text("source", request.source)?,
        destination: params::text("destination", request.destination)?,
        since,
        until,
    };
    let unfiltered = filter == OperationFilter::default();
    if unfiltered != request.all {
        return Err(ApiError::bad(
            "bad-filter",
            match unfiltered {
                true => {
                    "give a filter (source, destination, since, until), or \"all\": true to replay every dead letter"
                }
                false => "\"all\": true cannot be combined with a filter",
            },
        ));
    }
    let operation = admin.store.create_replay_operation(&filter).await?;
    admin.runner.wake.notify_one();
    tracing::info!(token = %auth.token, operation = %operation.id, matched = operation.matched, "bulk replay started");
    let view = OperationView::from(operation);
    let location = HeaderValue::try_from(&view.href).expect("a path is a header value");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

async fn find(admin: &Admin, id: Uuid) -> Result<Operation, ApiError> {
    admin
        .store
        .operation(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no operation {id}")))
}

/// `GET /v1/operations/{id}`: progress with `Retry-After` while running, then `303 See Other`
/// to the result.
pub async fn show(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Response, ApiError> {
    let operation = find(&admin, id).await?;
    if !operation.is_running() {
        let result = format!("/v1/operations/{id}/result");
        let location = HeaderValue::try_from(result).expect("a path is a header value");
        return Ok((
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location)],
            Json(OperationView::from(operation)),
        )
            .into_response());
    }
    Ok((
        [(header::RETRY_AFTER, HeaderValue::from(POLL_AFTER_SECS))],
        Json(OperationView::from(operation)),
    )
        .into_response())
}

/// `GET /v1/operations/{id}/result`: the final report of a finished operation.
pub async fn result(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Json<OperationView>, ApiError> {
    let operation = find(&admin, id).await?;
    if operation.is_running() {
        return Err(ApiError::Conflict(format!(
            "operation {id} is still running; poll /v1/operations/{id}"
        )));
    }
    Ok(Json(operation.into()))
}

/// `DELETE /v1/operations/{id}`: cancels; dead letters already replayed stay replayed.
pub async fn cancel(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Json<OperationView>, ApiError> {
    let operation = admin
        .store
        .cancel_operation(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no operation {id}")))?;
    if operation.state != "cancelled" {
        return Err(ApiError::Conflict(format!(
            "operation {id} already {}",
            operation.state
        )));
    }
    tracing::info!(token = %auth.token, operation = %id, "bulk replay cancelled");
    Ok(Json(operation.into()))
}
