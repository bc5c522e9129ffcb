//! Liveness and readiness.

use super::Receiver;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::fmt::Display;
use std::sync::{Arc, Mutex};
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
    if let Some(cause) = failure(postgres) {
        down.push(("postgres", cause));
    }
    if let Some(cause) = failure(redis) {
        down.push(("redis", cause));
    }
    receiver.readiness.observe(&down);
    if down.is_empty() {
        return Ok(Json(json!({ "status": "ready" })));
    }
    let names: Vec<&str> = down.iter().map(|(name, _)| *name).collect();
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Not ready",
        format!("unreachable: {}", names.join(", ")),
    )
    .retry_after(5))
}

fn failure<E: Display>(
    check: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> Option<String> {
    match check {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
    }
}

/// What the last probe found, so that the log says when readiness changes and not every
/// time an orchestrator probes (every few seconds, for as long as an outage lasts).
#[derive(Default)]
pub struct Readiness {
    /// The names of what was unreachable at the last probe; `None` before the first.
    last: Mutex<Option<Vec<&'static str>>>,
}

impl Readiness {
    /// Logs a change: WARN with the causes when something became unreachable, INFO when
    /// everything answers again. Returns whether it logged.
    pub fn observe(&self, down: &[(&'static str, String)]) -> bool {
        let names: Vec<&'static str> = down.iter().map(|(name, _)| *name).collect();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = last.is_none();
        if last.as_ref() == Some(&names) || (first && names.is_empty()) {
            *last = Some(names);
            return false;
        }
        *last = Some(names);
        drop(last);
        if down.is_empty() {
            tracing::info!("ready: postgres and redis answer again");
        } else {
            let causes: Vec<String> = down
                .iter()
                .map(|(name, cause)| format!("{name}: {cause}"))
                .collect();
            tracing::warn!(causes = %causes.join("; "), "not ready");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn only_changes_of_readiness_are_logged() {
        let readiness = Readiness::default();
        let postgres_down = [("postgres", "connection refused".to_string())];
        let both_down = [
            ("postgres", "connection refused".to_string()),
            ("redis", "connection refused".to_string()),
        ];
        assert!(
            !readiness.observe(&[]),
            "ready from the start: nothing to say"
        );
        assert!(readiness.observe(&postgres_down));
        assert!(
            !readiness.observe(&postgres_down),
            "the same outage, probed again"
        );
        assert!(readiness.observe(&both_down));
        assert!(readiness.observe(&[]), "back");
        assert!(!readiness.observe(&[]));

        let starting_down = Readiness::default();
        assert!(
            starting_down.observe(&postgres_down),
            "not ready at the first probe"
        );
    }
}
