//! The public listener: `POST /webhooks/{source}` (and the `GET` subscription check some
//! providers send there), and health. No SQL or Redis here: those go through `store` and `queue`.

mod batcher;
mod budget;
mod handshake;
mod health;
mod ingest;
mod ingress;
mod stored_headers;
mod tally;
mod type_labels;

use crate::config::Config;
use crate::problem::Problem;
use crate::queue::stream::Streams;
use crate::store::Store;
use crate::telemetry;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

pub use batcher::{Batcher, Unavailable};
pub use budget::{IngestBudget, OverBudget, Reservation};
pub use health::Readiness;
pub use tally::Tally;
pub use type_labels::TypeLabels;

pub struct Receiver {
    pub config: Arc<Config>,
    pub store: Store,
    pub streams: Streams,
    pub batcher: Batcher,
    /// `edge.ingest_memory`, shared by every request of this receiver.
    pub budget: IngestBudget,
    /// The bounded `event_type` label of the received counter.
    pub type_labels: TypeLabels,
    /// What `/readyz` found last, so that only its changes are logged.
    pub readiness: Readiness,
    /// Every answer, by source and outcome, for the overview.
    pub tally: Tally,
}

/// The public listener's routes, traced per request (`x-request-id`), except `/readyz`: an
/// orchestrator probes it every few seconds, and it logs its own changes instead of each 503.
pub fn router(receiver: Arc<Receiver>) -> Router {
    let probe = Router::new()
        .route("/readyz", get(health::readyz))
        .with_state(receiver.clone());
    telemetry::traced(
        Router::new()
            .route(
                "/webhooks/{source}",
                post(ingest::ingest).get(handshake::challenge),
            )
            .route("/healthz", get(health::healthz))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(receiver),
    )
    .merge(probe)
}

async fn not_found() -> Problem {
    Problem::not_found("no such route; webhooks go to POST /webhooks/{source}")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}
