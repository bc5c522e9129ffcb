//! The operators' audit log over HTTP: `GET /v1/admin-actions`, who did what, newest first.

use super::Admin;
use super::auth::{Authorized, Read};
use super::error::ApiError;
use super::params::{self, Listing, Page, Params};
use crate::store::Keyset;
use crate::store::admin_actions::{Action, AdminAction, AdminActionFilter};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    action: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/admin-actions`: newest first; `actor` is a token's name or `cli:<user>`.
pub async fn list(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Params(query): Params<ListQuery>,
) -> Result<Json<Listing<AdminAction>>, ApiError> {
    let action = query.action.as_deref().map(parse_action).transpose()?;
    let params::Range { since, until } =
        params::range(query.since.as_deref(), query.until.as_deref())?;
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = AdminActionFilter {
        action,
        actor: params::text("actor", query.actor)?,
        since,
        until,
    };
    let rows = admin
        .store
        .list_admin_actions(&filter, page.before, page.fetch())
        .await?;
    Ok(Json(page.listing(rows, |a| Keyset { at: a.at, id: a.id })))
}

/// An `action` filter must name one: a typo would otherwise list nothing, silently.
fn parse_action(text: &str) -> Result<Action, ApiError> {
    Action::parse(text).ok_or_else(|| {
        ApiError::bad(
            "bad-action",
            format!("action={text:?} must be one of {}", Action::names()),
        )
    })
}
