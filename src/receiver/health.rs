//! Liveness and readiness.

use super::Receiver;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when both Postgres and Redis answer; a 503 names each one that does not.
pub async fn readyz(State(receiver): State<Arc<Receiver>>) -> Result<Json<Value>, Problem> {
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, receiver.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, receiver.streams.ping()),
    );
    let mut down = Vec::new();
    if !matches!(postgres, Ok(Ok(()))) {
        down.push("postgres");
    }
    if !matches!(redis, Ok(Ok(()))) {
        down.push("redis");
    }
    if down.is_empty() {
        return Ok(Json(json!({ "status": "ready" })));
    }
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Not ready",
        format!("unreachable: {}", down.join(", ")),
    )
    .retry_after(5))
}
