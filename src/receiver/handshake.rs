//! Handshakes a provider requires before it sends real events: a verified `POST` that is a
//! handshake (its scheme says which), and Meta's subscription `GET`. Answered, never stored
//! or enqueued.

use super::Receiver;
use super::ingest::IngestError;
use crate::problem::Problem;
use crate::verify::{Answer, Challenge};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub fn response(answer: Answer) -> Response {
    match answer {
        Answer::Json(value) => Json(value).into_response(),
        Answer::Text(text) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
    }
}

/// `GET /webhooks/{source}`: only for providers that subscribe an endpoint this way.
pub async fn challenge(
    State(receiver): State<Arc<Receiver>>,
    Path(source_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(source) = receiver.config.source(&source_name) else {
        return Problem::from(&IngestError::UnknownSource(source_name)).into_response();
    };
    match source.verifier.challenge(query.as_deref().unwrap_or("")) {
        Challenge::Answer(answer) => {
            tracing::info!(source = %source.name, "subscription challenge answered");
            response(answer)
        }
        Challenge::Refused => {
            tracing::info!(source = %source.name, "subscription challenge refused");
            Problem::new(
                StatusCode::FORBIDDEN,
                "challenge-refused",
                "Challenge refused",
                "the verify token does not match, or hub.mode is not subscribe",
            )
            .into_response()
        }
        Challenge::Unsupported => Problem::method_not_allowed().into_response(),
    }
}
