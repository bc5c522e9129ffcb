//! `GET /v1/sources`: every source's requests since a time (the last hour unless asked):
//! received, accepted, duplicates and refusals, with each outcome's count.

use super::Admin;
use super::auth::{Authorized, Read};
use super::error::ApiError;
use super::params::{self, Params};
use crate::store::ingress_counts::KEPT;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Outcomes that are neither an event taken nor a refusal.
const NOT_REFUSED: [&str; 3] = ["accepted", "duplicate", "handshake"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    since: Option<String>,
}

#[derive(Serialize)]
pub struct Sources {
    /// The start of the first minute counted.
    since: DateTime<Utc>,
    items: Vec<SourceTraffic>,
}

#[derive(Serialize)]
struct SourceTraffic {
    source: String,
    /// Every request answered, whatever the answer.
    received: i64,
    /// New events stored.
    accepted: i64,
    /// Events already stored, answered 200 again.
    duplicate: i64,
    /// Requests answered with an error (4xx or 503): `outcomes` says which.
    refused: i64,
    /// Requests by outcome, as `hookgate_webhooks_received_total` labels them.
    outcomes: BTreeMap<String, i64>,
}

pub async fn list(
    _: Authorized<Read>,
    State(admin): State<Arc<Admin>>,
    Params(query): Params<Query>,
) -> Result<Json<Sources>, ApiError> {
    let now = Utc::now();
    let since = params::time("since", query.since.as_deref())?.unwrap_or(now - TimeDelta::hours(1));
    if since < now - KEPT {
        return Err(ApiError::bad(
            "bad-time",
            "request counts are kept for a day: since= must be within the last 24h",
        ));
    }
    let mut counts = admin.store.ingress_counts_since(since).await?;
    // Every configured source, counted or not; then any no longer configured.
    let mut items: Vec<SourceTraffic> = (admin.sources.iter())
        .map(|source| traffic(source.clone(), counts.remove(source).unwrap_or_default()))
        .collect();
    items.extend(
        counts
            .into_iter()
            .map(|(source, outcomes)| traffic(source, outcomes)),
    );
    Ok(Json(Sources { since, items }))
}

fn traffic(source: String, outcomes: BTreeMap<String, i64>) -> SourceTraffic {
    let of = |outcome: &str| outcomes.get(outcome).copied().unwrap_or(0);
    let received = outcomes.values().sum();
    let refused = (outcomes.iter())
        .filter(|(outcome, _)| !NOT_REFUSED.contains(&outcome.as_str()))
        .map(|(_, count)| count)
        .sum();
    SourceTraffic {
        source,
        received,
        accepted: of("accepted"),
        duplicate: of("duplicate"),
        refused,
        outcomes,
    }
}
