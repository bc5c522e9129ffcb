//! Destinations over HTTP: `GET /v1/destinations` (every source's destinations: paused or
//! not, the breaker, what is pending, the last error), and pausing and resuming one.

use super::Admin;
use super::auth::{Authorized, Read, Replay};
use super::error::ApiError;
use super::params::Id;
use crate::store::admin_actions::Actor;
use crate::store::destinations::{Changed, DestinationError, DestinationStatus};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::sync::Arc;

impl From<DestinationError> for ApiError {
    fn from(error: DestinationError) -> Self {
        match error {
            DestinationError::NotFound { .. } => Self::NotFound(error.to_string()),
            DestinationError::Store(error) => Self::Store(error),
        }
    }
}

#[derive(Serialize)]
pub struct Destinations {
    items: Vec<DestinationStatus>,
}

/// `GET /v1/destinations`: every configured destination, by source and name.
pub async fn list(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
) -> Result<Json<Destinations>, ApiError> {
    let items = admin
        .store
        .list_destinations(admin.replayer.routes())
        .await?;
    Ok(Json(Destinations { items }))
}

/// `POST /v1/destinations/{source}/{name}/pause`: 200 with the destination, paused; pausing
/// a paused one changes (and records) nothing.
pub async fn pause(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id((source, name)): Id<(String, String)>,
) -> Result<Json<DestinationStatus>, ApiError> {
    let actor = auth.actor();
    let routes = admin.replayer.routes();
    let changed = (admin.store.pause(routes, &source, &name, &actor)).await?;
    respond(&admin, &actor, "paused", changed, &source, &name).await
}

/// `POST /v1/destinations/{source}/{name}/resume`: 200 with the destination; what waited is
/// delivered in arrival order. Resuming one not paused changes (and records) nothing.
pub async fn resume(
    auth: Authorized<Replay>,
    State(admin): State<Arc<Admin>>,
    Id((source, name)): Id<(String, String)>,
) -> Result<Json<DestinationStatus>, ApiError> {
    let actor = auth.actor();
    let routes = admin.replayer.routes();
    let changed = (admin.store.resume(routes, &source, &name, &actor)).await?;
    respond(&admin, &actor, "resumed", changed, &source, &name).await
}

async fn respond(
    admin: &Admin,
    actor: &Actor,
    done: &str,
    changed: Changed,
    source: &str,
    name: &str,
) -> Result<Json<DestinationStatus>, ApiError> {
    if changed == Changed::Yes {
        tracing::info!(
            actor = actor.as_str(),
            source,
            destination = name,
            "destination {done}"
        );
    }
    let status = (admin
        .store
        .list_destinations(admin.replayer.routes())
        .await?)
        .into_iter()
        .find(|d| d.source == source && d.destination == name)
        .ok_or_else(|| {
            ApiError::NotFound(format!("no destination {source}/{name} is configured"))
        })?;
    Ok(Json(status))
}
