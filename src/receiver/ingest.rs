//! `POST /webhooks/{source}`: client address -> size limit -> memory budget -> verify ->
//! rate limit -> event id and type -> the destinations that take it -> insert -> XADD -> 200.

use super::batcher::Unavailable;
use super::budget::{OverBudget, Reservation};
use super::ingress::{self, Refused};
use super::{Receiver, handshake, stored_headers, type_labels};
use crate::config::Source;
use crate::edge::PeerAddr;
use crate::event_id::EventIdError;
use crate::problem::Problem;
use crate::routing::Routed;
use crate::store::events::{Inserted, NewEvent};
use crate::verify::VerifyError;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use serde::Serialize;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower_http::timeout::TimeoutError;
use uuid::Uuid;

/// Seconds a provider is asked to wait after a 503.
const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown source {0:?}")]
    UnknownSource(String),
    #[error("body is larger than this source's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("could not read the request body")]
    BodyRead,
    #[error("the body did not arrive within {0:?} of the head")]
    BodyTimeout(Duration),
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    #[error(transparent)]
    Unverified(#[from] VerifyError),
    #[error(transparent)]
    EventId(#[from] EventIdError),
    #[error("the event could not be stored")]
    Unavailable(#[from] Unavailable),
    #[error(transparent)]
    Refused(#[from] Refused),
}

impl IngestError {
    /// The `outcome` label of `hookgate_webhooks_received_total`.
    fn outcome(&self) -> &'static str {
        match self {
            Self::UnknownSource(_) => "unknown_source",
            Self::TooLarge { .. } => "too_large",
            Self::BodyRead => "bad_request",
            Self::BodyTimeout(_) => "body_timeout",
            Self::OverBudget(_) | Self::Unavailable(Unavailable::Overloaded(_)) => "overloaded",
            Self::Unverified(_) => "unverified",
            Self::EventId(_) => "missing_event_id",
            Self::Unavailable(_) => "unavailable",
            Self::Refused(Refused::RateLimited { .. }) => "rate_limited",
            Self::Refused(_) => "address_not_allowed",
        }
    }
}

impl From<&IngestError> for Problem {
    fn from(error: &IngestError) -> Self {
        use StatusCode as S;
        let detail = error.to_string();
        match error {
            IngestError::UnknownSource(_) => {
                Problem::new(S::NOT_FOUND, "unknown-source", "Unknown source", detail)
            }
            IngestError::TooLarge { .. } => Problem::new(
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                detail,
            ),
            IngestError::BodyRead => {
                Problem::new(S::BAD_REQUEST, "bad-request", "Bad request", detail)
            }
            IngestError::BodyTimeout(_) => Problem::new(
                S::REQUEST_TIMEOUT,
                "body-timeout",
                "Request body timeout",
                detail,
            ),
            IngestError::Unverified(e) => {
                let (slug, title) = match e {
                    VerifyError::MissingHeader(_) => {
                        ("signature-header-missing", "Signature header missing")
                    }
                    VerifyError::MalformedHeader { .. } => {
                        ("signature-header-malformed", "Signature header malformed")
                    }
                    VerifyError::NoMatchingSignature => {
                        ("signature-mismatch", "Signature does not match")
                    }
                    VerifyError::TimestampOutsideTolerance { .. } => {
                        ("timestamp-outside-tolerance", "Timestamp outside tolerance")
                    }
                };
                Problem::new(S::UNAUTHORIZED, slug, title, detail)
            }
            IngestError::EventId(_) => {
                Problem::new(S::BAD_REQUEST, "event-id", "No usable event id", detail)
            }
            IngestError::OverBudget(_) | IngestError::Unavailable(Unavailable::Overloaded(_)) => {
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "Overloaded",
                    "the receiver holds as many webhooks as it may; nothing was accepted, retry later",
                )
                .retry_after(RETRY_AFTER_SECS)
            }
            IngestError::Refused(Refused::RateLimited { retry_after, .. }) => Problem::new(
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Rate limited",
                detail,
            )
            .retry_after(*retry_after),
            IngestError::Refused(_) => Problem::new(
                S::FORBIDDEN,
                "address-not-allowed",
                "Address not allowed",
                detail,
            ),
            // The cause is logged, not shown: it may name hosts and users of the database.
            IngestError::Unavailable(_) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                "the event could not be stored; nothing was accepted, retry later",
            )
            .retry_after(RETRY_AFTER_SECS),
        }
    }
}

#[derive(Serialize)]
struct Accepted {
    id: Uuid,
    status: &'static str,
}

pub async fn ingest(
    State(receiver): State<Arc<Receiver>>,
    Path(source_name): Path<String>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some(source) = receiver.config.source(&source_name) else {
        // Unknown names are not used as a label: they come from whoever calls.
        let unknown = Err(IngestError::UnknownSource(source_name));
        return reply("_unknown", type_labels::NONE.to_string(), unknown).1;
    };
    let peer = peer.map(|Extension(peer)| peer);
    let result = handle(&receiver, source, peer, &headers, body).await;
    metrics::histogram!("hookgate_ingest_duration_seconds", "source" => source.name.clone())
        .record(started.elapsed().as_secs_f64());
    let event_type = match &result {
        Ok(Handled::Stored(_, event_type)) => event_type.as_deref(),
        _ => None,
    };
    let label = receiver.type_labels.label(&source.name, event_type);
    let (outcome, response) = reply(&source.name, label, result);
    receiver.tally.record(&source.name, outcome);
    response
}

enum Handled {
    /// With the event's type, if it has one.
    Stored(Inserted, Option<String>),
    Handshake(Response),
}

async fn handle(
    receiver: &Receiver,
    source: &Source,
    peer: Option<PeerAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Handled, IngestError> {
    ingress::check_address(&source.ingress, peer, headers)?;
    let (body, memory) = read_body(receiver, source, headers, body).await?;
    let verified = source.verifier.verify(headers, &body, unix_now())?;
    if let Some(answer) = source.verifier.handshake(&verified, headers, &body) {
        return Ok(Handled::Handshake(handshake::response(answer)));
    }
    ingress::take_slot(&receiver.streams, source).await?;
    let external_id = source.event_id.extract(headers, &body)?;
    let event_type = (source.event_type.as_ref()).and_then(|rule| rule.extract(headers, &body));
    let routed = Routed::new(event_type.as_deref(), &body);
    let destinations = (source.destinations.iter())
        .filter(|d| d.selector.accepts(&routed))
        .map(|d| d.name.clone())
        .collect();
    let event = NewEvent {
        source: source.name.clone(),
        external_id: external_id.clone(),
        event_type: event_type.clone(),
        payload: body,
        headers: stored_headers::to_json(headers),
        destinations,
        max_attempts: source.retry.max_attempts as i32,
        verified,
    };
    // Answered once the event is committed and, when new, its XADD tried: from the commit
    // on the answer is 200 whatever Redis does.
    let inserted = receiver.batcher.ingest(event, memory).await?;
    match inserted {
        Inserted::New(id) => {
            tracing::info!(source = %source.name, %external_id, event_type = event_type.as_deref().unwrap_or("-"), event = %id, "webhook stored");
        }
        Inserted::Duplicate(id) => {
            tracing::info!(source = %source.name, %external_id, event_type = event_type.as_deref().unwrap_or("-"), event = %id, "webhook was a duplicate");
        }
    }
    Ok(Handled::Stored(inserted, event_type))
}

/// The answer, and its outcome as counted.
fn reply(
    source: &str,
    event_type: String,
    result: Result<Handled, IngestError>,
) -> (&'static str, Response) {
    let (outcome, response) = match result {
        Ok(Handled::Stored(Inserted::New(id), _)) => (
            "accepted",
            Json(Accepted {
                id,
                status: "accepted",
            })
            .into_response(),
        ),
        Ok(Handled::Stored(Inserted::Duplicate(id), _)) => (
            "duplicate",
            Json(Accepted {
                id,
                status: "duplicate",
            })
            .into_response(),
        ),
        Ok(Handled::Handshake(response)) => ("handshake", response),
        Err(error) => {
            match &error {
                IngestError::OverBudget(_)
                | IngestError::Unavailable(Unavailable::Overloaded(_)) => {
                    tracing::warn!(%error, source, "webhook refused: receiver overloaded");
                }
                IngestError::Unavailable(cause) => {
                    tracing::error!(%cause, source, "webhook refused: store unavailable");
                }
                _ => tracing::info!(%error, source, "webhook refused"),
            }
            (error.outcome(), Problem::from(&error).into_response())
        }
    };
    metrics::counter!("hookgate_webhooks_received_total", "source" => source.to_string(), "outcome" => outcome, "event_type" => event_type)
        .increment(1);
    (outcome, response)
}

/// Reads the body, refusing it as soon as it is known to exceed the source's `max_body` or to
/// pass `edge.ingest_memory`: a declared Content-Length is checked and reserved before a byte
/// is read, a streamed (chunked) body as it arrives.
async fn read_body(
    receiver: &Receiver,
    source: &Source,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<(Bytes, Reservation), IngestError> {
    let limit = source.max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let declared = match declared {
        Some(len) if len > limit as u64 => return Err(IngestError::TooLarge { limit }),
        Some(len) => len as usize,
        None => 0,
    };
    let mut memory = receiver.budget.reserve(declared)?;
    let mut bytes = BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreadable(&e, receiver.config.edge.body_timeout))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = bytes.len() + data.len();
        if total > limit {
            return Err(IngestError::TooLarge { limit });
        }
        memory.cover(total)?;
        bytes.extend_from_slice(&data);
    }
    Ok((bytes.freeze(), memory))
}

/// The edge's body deadline surfaces as a read error of the body.
fn unreadable(error: &axum::Error, deadline: Duration) -> IngestError {
    let mut causes = std::iter::successors(error.source(), |e| (*e).source());
    match causes.any(|e| e.is::<TimeoutError>()) {
        true => IngestError::BodyTimeout(deadline),
        false => IngestError::BodyRead,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
