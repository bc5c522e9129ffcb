//! One attempt at one destination.

use super::trace;
use crate::config::{Config, Destination, Target};
use crate::queue::stream::Streams;
use crate::redact;
use crate::store::deliveries::{ClaimedEvent, FailureKind};
use crate::tls::{self, TlsSettings};
use axum::http::{StatusCode, header};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How much of a refusing destination's answer is kept as the attempt's error text.
const ERROR_BODY_LIMIT: usize = 256;
/// How much of a refusing answer is read at most. A short error page is read to its end, so
/// its connection can carry the next request; a longer body is cut off there and its
/// connection closed, so a destination cannot make a worker download gigabytes.
const ERROR_BODY_READ: usize = 4 * 1024;

/// What the destination did.
#[derive(Debug)]
pub struct Response {
    pub status_code: Option<u16>,
    pub failure: Option<(FailureKind, String)>,
    /// From a 429 or 503 that said when to come back.
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

pub struct Deliverer {
    /// For the destinations without TLS settings of their own.
    shared: reqwest::Client,
    /// Per source, per destination: one client each for those with their own CA or client
    /// certificate, built at start, so each keeps its own pool of connections.
    own: HashMap<String, HashMap<String, reqwest::Client>>,
    streams: Streams,
}

impl Deliverer {
    pub fn new(config: &Config, streams: Streams) -> Self {
        let mut own: HashMap<String, HashMap<String, reqwest::Client>> = HashMap::new();
        for source in &config.sources {
            for destination in &source.destinations {
                if let Some(tls) = &destination.tls {
                    own.entry(source.name.clone())
                        .or_default()
                        .insert(destination.name.clone(), http_client(tls));
                }
            }
        }
        Self {
            shared: http_client(&TlsSettings::default()),
            own,
            streams,
        }
    }

    fn client(&self, source: &str, destination: &str) -> &reqwest::Client {
        (self.own.get(source))
            .and_then(|clients| clients.get(destination))
            .unwrap_or(&self.shared)
    }

    /// The idempotency key a destination sees: the same for every attempt of this delivery.
    pub fn message_id(event: &ClaimedEvent, destination: &str) -> String {
        format!("{}_{destination}", event.event_id)
    }

    pub async fn deliver(
        &self,
        source: &str,
        destination: &Destination,
        event: &ClaimedEvent,
        attempt: i32,
    ) -> Response {
        let started = Instant::now();
        let id = Self::message_id(event, &destination.name);
        let mut response = match &destination.target {
            Target::Http { url, timeout } => {
                self.post(url, *timeout, source, destination, event, &id, attempt)
                    .await
            }
            Target::Stream { key, .. } => self.publish(key, source, event, &id).await,
        };
        response.duration = started.elapsed();
        response
    }

    #[allow(clippy::too_many_arguments)]
    async fn post(
        &self,
        url: &str,
        timeout: Duration,
        source: &str,
        destination: &Destination,
        event: &ClaimedEvent,
        id: &str,
        attempt: i32,
    ) -> Response {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let mut request = self
            .client(source, &destination.name)
            .post(url)
            .timeout(timeout)
            .header(
                "content-type",
                event
                    .content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("hookgate-source", source)
            .header("hookgate-attempt", attempt)
            .header("traceparent", trace::traceparent(event.event_id));
        if let Some(key) = &destination.signing_key {
            request = request.header("webhook-signature", key.sign(id, timestamp, &event.payload));
        }
        for (name, value) in &destination.headers {
            request = request.header(name, value);
        }
        match request.body(event.payload.clone()).send().await {
            Ok(response) if response.status().is_success() => Response {
                status_code: Some(response.status().as_u16()),
                failure: None,
                retry_after: None,
                duration: Duration::ZERO,
            },
            Ok(response) => {
                let status = response.status();
                let retry_after = match status {
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs),
                    _ => None,
                };
                let mut error = format!("HTTP {status}");
                if status.is_redirection() {
                    error.push_str(&format!(
                        " (redirect to {}, not followed)",
                        location(&response)
                    ));
                }
                let body = body_prefix(response, ERROR_BODY_READ).await;
                let snippet = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_LIMIT)]);
                let snippet = snippet.trim();
                if !snippet.is_empty() {
                    error.push_str(": ");
                    error.push_str(snippet);
                }
                Response {
                    status_code: Some(status.as_u16()),
                    failure: Some((FailureKind::Rejected, error)),
                    retry_after,
                    duration: Duration::ZERO,
                }
            }
            Err(error) => {
                let kind = if error.is_timeout() {
                    FailureKind::Timeout
                } else {
                    FailureKind::Connection
                };
                // reqwest names the URL in its errors, credentials and query included.
                let error = error.without_url();
                let text = match tls::refusal(&error) {
                    Some(words) => format!("{words} ({})", error_chain(&error)),
                    None => error_chain(&error),
                };
                Response {
                    status_code: None,
                    failure: Some((kind, text)),
                    retry_after: None,
                    duration: Duration::ZERO,
                }
            }
        }
    }

    async fn publish(&self, key: &str, source: &str, event: &ClaimedEvent, id: &str) -> Response {
        let event_id = event.event_id.to_string();
        let content_type = event
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let fields: [(&str, &[u8]); 5] = [
            ("webhook-id", id.as_bytes()),
            ("event", event_id.as_bytes()),
            ("source", source.as_bytes()),
            ("content-type", content_type.as_bytes()),
            ("payload", &event.payload),
        ];
        let failure = self
            .streams
            .publish(key, &fields)
            .await
            .err()
            .map(|e| (FailureKind::Connection, e.to_string()));
        Response {
            status_code: None,
            failure,
            retry_after: None,
            duration: Duration::ZERO,
        }
    }
}

/// A client for destinations with these TLS settings.
fn http_client(tls: &TlsSettings) -> reqwest::Client {
    // A redirect is not followed: reqwest would turn the POST into a body-less GET, and
    // send the signature and custom headers to wherever the destination pointed.
    tls.client_builder()
        .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client with TLS settings validated at load builds")
}

/// Where a redirect pointed, resolved against the request's URL and redacted.
fn location(response: &reqwest::Response) -> String {
    let Some(location) = response.headers().get(header::LOCATION) else {
        return "nowhere (no Location header)".to_string();
    };
    match location.to_str().ok().map(|l| response.url().join(l)) {
        Some(Ok(target)) => redact::url(target.as_str()),
        _ => "(unparsable URL)".to_string(),
    }
}

/// The first `limit` bytes of the body, or what arrived of them before it failed.
async fn body_prefix(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk[..chunk.len().min(limit - body.len())]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// reqwest's top-level message hides the cause ("error sending request"); operators need it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
