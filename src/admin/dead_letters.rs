//! Dead letters over HTTP: list, inspect, replay or delete one. Bulk replays are operations
//! (`operations.rs`).

use super::Admin;
use super::auth::{Authorized, Read, Replay};
use super::error::ApiError;
use super::params::{self, Id, Listing, Page, Params};
use crate::store::Keyset;
use crate::store::admin_actions::Action;
use crate::store::dead_letters::{
    DeadLetter, DeadLetterError, DeadLetterFilter, DeadLetterSummary,
};
use crate::store::status::AttemptRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    source: Option<String>,
    destination: Option<String>,
    since: Option<String>,
    until: Option<String>,
    include_replayed: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/dead-letters`: newest first; replayed ones only with `include_replayed=true`.
pub async fn list(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Params(query): Params<ListQuery>,
) -> Result<Json<Listing<DeadLetterSummary>>, ApiError> {
    let include_replayed = match query.include_replayed.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad(
                "bad-query",
                format!("include_replayed={other:?} must be true or false"),
            ));
        }
    };
    let params::Range { since, until } =
        params::range(query.since.as_deref(), query.until.as_deref())?;
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = DeadLetterFilter {
        source: params::text("source", query.source)?,
        destination: params::text("destination", query.destination)?,
        since,
        until,
        include_replayed,
    };
    let rows = admin
        .store
        .list_dead_letters(&filter, page.before, page.fetch())
        .await?;
    Ok(Json(page.listing(rows, |d| Keyset {
        at: d.created_at,
        id: d.id,
    })))
}

#[derive(Serialize)]
pub struct DeadLetterView {
    #[serde(flatten)]
    letter: DeadLetter,
    /// Every attempt of the delivery, earlier runs before a replay included.
    attempt_log: Vec<AttemptRecord>,
    event: String,
}

/// `GET /v1/dead-letters/{id}`: the payload as received, its headers and every attempt.
pub async fn show(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Json<DeadLetterView>, ApiError> {
    let letter = admin.store.dead_letter(id).await?;
    let attempt_log = admin
        .store
        .attempts(letter.summary.event_id, &letter.summary.destination)
        .await?;
    let event = format!("/v1/events/{}", letter.summary.event_id);
    Ok(Json(DeadLetterView {
        letter,
        attempt_log,
        event,
    }))
}

#[derive(Serialize)]
pub struct ReplayedView {
    id: Uuid,
    event_id: Uuid,
    /// False when Redis was unavailable: the scheduler enqueues the delivery shortly.
    enqueued: bool,
    /// Where to follow the delivery from here.
    event: String,
}

/// `POST /v1/dead-letters/{id}/replay`: the delivery is pending again with a fresh budget.
pub async fn replay(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<Json<ReplayedView>, ApiError> {
    let letter = admin.store.dead_letter(id).await?.summary;
    if let Some(at) = letter.replayed_at {
        return Err(DeadLetterError::AlreadyReplayed { id, at }.into());
    }
    let event_id = letter.event_id;
    let replayed = admin.replayer.ids(&[id], &auth.actor()).await?;
    if replayed.batch.replayed.is_empty() {
        // Checked open a moment ago: it cannot be delivered (409), or since then it was
        // deleted (404), replayed (409), or is held by a replay still in flight (409).
        let routes = admin.replayer.routes();
        admin.store.check_dead_letters(&[id], Some(routes)).await?;
        return Err(ApiError::Conflict(format!(
            "dead letter {id} is being replayed by another request"
        )));
    }
    tracing::info!(token = %auth.token, dead_letter = %id, "dead letter replayed");
    Ok(Json(ReplayedView {
        id,
        event_id,
        enqueued: replayed.not_enqueued == 0,
        event: format!("/v1/events/{event_id}"),
    }))
}

/// `DELETE /v1/dead-letters/{id}`: the delivery stays dead; only the record goes.
pub async fn delete(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id(id): Id<Uuid>,
) -> Result<StatusCode, ApiError> {
    let purged = admin
        .store
        .purge_dead_letters(&[id], &auth.actor(), Action::Delete)
        .await?;
    if purged.is_empty() {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    }
    tracing::info!(token = %auth.token, dead_letter = %id, "dead letter deleted");
    Ok(StatusCode::NO_CONTENT)
}
