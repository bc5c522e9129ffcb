//! Bulk replay and bulk redelivery as long-running operations: `202 Accepted` and a resource
//! to poll, since replaying 100,000 dead letters outlives any HTTP request. `crate::operations` runs them.

use super::Admin;
use super::auth::{Authorized, Read, Replay};
use super::error::ApiError;
use super::events::check_status;
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
        status: None,
    };
    check_filter(
        &filter,
        request.all,
        "(source, destination, since, until)",
        "replay every dead letter",
    )?;
    let operation = admin
        .store
        .create_replay_operation(&filter, &auth.actor())
        .await?;
    admin.runner.wake.notify_one();
    tracing::info!(token = %auth.token, operation = %operation.id, matched = operation.matched, "bulk replay started");
    Ok(started(operation))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    source: Option<String>,
    destination: Option<String>,
    since: Option<String>,
    until: Option<String>,
    status: Option<String>,
    /// Required when no filter is given: redelivering every event is never an accident.
    #[serde(default)]
    all: bool,
}

/// `POST /v1/events/redeliver`: 202 with `Location` of the operation.
pub async fn start_redeliver(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Body(request): Body<RedeliverRequest>,
) -> Result<Response, ApiError> {
    let params::Range { since, until } =
        params::range(request.since.as_deref(), request.until.as_deref())?;
    check_status(request.status.as_deref())?;
    let filter = OperationFilter {
        source: params::text("source", request.source)?,
        destination: params::text("destination", request.destination)?,
        since,
        until,
        status: request.status,
    };
    check_filter(
        &filter,
        request.all,
        "(source, destination, since, until, status)",
        "redeliver every event",
    )?;
    let operation = admin
        .store
        .create_redeliver_operation(&filter, &auth.actor())
        .await?;
    admin.runner.wake.notify_one();
    tracing::info!(token = %auth.token, operation = %operation.id, matched = operation.matched, "bulk redelivery started");
    Ok(started(operation))
}

/// A bulk operation acts on everything only when asked to with `"all": true`, and then on
/// nothing narrower.
fn check_filter(
    filter: &OperationFilter,
    all: bool,
    filters: &str,
    everything: &str,
) -> Result<(), ApiError> {
    let unfiltered = *filter == OperationFilter::default();
    if unfiltered == all {
        return Ok(());
    }
    Err(ApiError::bad(
        "bad-filter",
        match unfiltered {
            true => format!("give a filter {filters}, or \"all\": true to {everything}"),
            false => "\"all\": true cannot be combined with a filter".to_string(),
        },
    ))
}

/// `202 Accepted` with the new operation and its `Location`.
fn started(operation: Operation) -> Response {
    let view = OperationView::from(operation);
    let location = HeaderValue::try_from(&view.href).expect("a path is a header value");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response()
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

/// `DELETE /v1/operations/{id}`: cancels; what was already replayed or redelivered stays so.
pub async fn cancel(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Json<OperationView>, ApiError> {
    let operation = admin
        .store
        .cancel_operation(id, &auth.actor())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no operation {id}")))?;
    if operation.state != "cancelled" {
        return Err(ApiError::Conflict(format!(
            "operation {id} already {}",
            operation.state
        )));
    }
    tracing::info!(token = %auth.token, operation = %id, kind = %operation.kind, "bulk operation cancelled");
    Ok(Json(operation.into()))
}
