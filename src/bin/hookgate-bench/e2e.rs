//! Delivery, end to end: a built-in HTTP sink as the source's destination, and two phases per
//! worker count.
//!
//! - idle: `hookgate run`, webhooks at a low fixed rate; per event, the time from its `200
//!   accepted` reaching the sender to its delivery reaching the sink.
//! - drain: a backlog is ingested by `hookgate receive` (no worker), then `hookgate work` is
//!   started alone and the sink times it from first to last delivery: the worker's own rate,
//!   not capped by how fast the bench can ingest.

use crate::gateway::{GatewayError, Role, Setup};
use crate::load::{self, Mode};
use crate::report::{self, Latency};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

/// Every delivery that reached the sink.
#[derive(Default)]
struct Arrivals {
    seen: Mutex<Seen>,
    changed: Notify,
}

#[derive(Default)]
struct Seen {
    /// When each event's delivery first arrived, by event id.
    first: HashMap<Uuid, Instant>,
    /// Deliveries of each event, repeats included.
    count: HashMap<Uuid, usize>,
    /// Deliveries whose `webhook-id` names no event.
    unnamed: usize,
}

/// What reached the sink for the events a phase sent.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    /// Events the gateway accepted.
    pub expected: usize,
    /// Deliveries that arrived for them, repeats included.
    pub deliveries: usize,
    /// Deliveries beyond the first of their event (at-least-once shows here).
    pub duplicates: usize,
    /// Accepted events never delivered.
    pub missing: usize,
    /// Deliveries of events the phase did not send, or naming none.
    pub unexpected: usize,
}

impl Tally {
    pub fn line(&self) -> String {
        format!(
            "{} of {} events delivered, {} deliveries, {} duplicates, {} unexpected",
            self.expected - self.missing,
            self.expected,
            self.deliveries,
            self.duplicates,
            self.unexpected
        )
    }
}

pub struct Sink {
    pub url: String,
    arrivals: Arc<Arrivals>,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/sink", listener.local_addr()?);
        let arrivals = Arc::new(Arrivals::default());
        let app = Router::new()
            .route("/sink", post(receive))
            .with_state(arrivals.clone());
        let server = tokio::spawn(async move {
            // Ends only when aborted in Drop; an accept error would end it early, which shows
            // as deliveries that never arrive.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            arrivals,
            server,
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.arrivals.seen.lock().expect("not poisoned")
    }

    pub fn clear(&self) {
        *self.seen() = Seen::default();
    }

    /// What arrived so far for `sent`.
    fn tally(&self, sent: &HashSet<Uuid>) -> Tally {
        let seen = self.seen();
        let mut tally = Tally {
            expected: sent.len(),
            unexpected: seen.unnamed,
            ..Tally::default()
        };
        for (id, count) in &seen.count {
            match sent.contains(id) {
                true => {
                    tally.deliveries += count;
                    tally.duplicates += count - 1;
                }
                false => tally.unexpected += count,
            }
        }
        tally.missing = sent
            .iter()
            .filter(|id| !seen.first.contains_key(id))
            .count();
        tally
    }

    /// Waits until every event of `sent` has arrived; an event still missing after `within`
    /// fails the phase, naming how many.
    pub async fn wait_for(
        &self,
        phase: String,
        sent: &HashSet<Uuid>,
        within: Duration,
    ) -> Result<Tally, E2eError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrivals.changed.notified();
            // A full tally walks every event sent under the sink's lock: taken once enough
            // events arrived, not at each arrival, or at a million the sink itself becomes
            // the bottleneck it must never be.
            if self.seen().first.len() >= sent.len() {
                let tally = self.tally(sent);
                if tally.missing == 0 {
                    return Ok(tally);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let tally = self.tally(sent);
                return match tally.missing {
                    0 => Ok(tally),
                    _ => Err(E2eError::Lost {
                        phase,
                        within,
                        tally,
                    }),
                };
            }
        }
    }

    /// When each event first arrived.
    /// Events that arrived at least once.
    pub fn delivered(&self) -> usize {
        self.seen().first.len()
    }

    pub fn first_arrivals(&self) -> HashMap<Uuid, Instant> {
        self.seen().first.clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Records the arrival and answers 200 at once: the sink should cost the worker nothing.
async fn receive(
    State(arrivals): State<Arc<Arrivals>>,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    let now = Instant::now();
    // webhook-id is `<event id>_<destination>`.
    let event = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('_').next())
        .and_then(|id| id.parse::<Uuid>().ok());
    {
        let mut seen = arrivals.seen.lock().expect("not poisoned");
        match event {
            Some(event) => {
                seen.first.entry(event).or_insert(now);
                *seen.count.entry(event).or_default() += 1;
            }
            None => seen.unnamed += 1,
        }
    }
    arrivals.changed.notify_waiters();
    StatusCode::OK
}

pub struct E2ePlan {
    pub workers: Vec<usize>,
    pub idle_count: usize,
    pub idle_rate: f64,
    pub backlog: usize,
    pub ingest_concurrency: usize,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    pub workers: usize,
    pub idle_rate: f64,
    /// Accept (200 at the sender) to first arrival at the sink, at `idle_rate`.
    pub idle_delivery: Latency,
    /// Deliveries that reached the sink before their 200 reached the sender (counted as 0).
    pub delivered_before_accept: usize,
    pub idle: Tally,
    /// The drain's events, all ingested before the worker started.
    pub drain: Tally,
    /// Events delivered over first to last arrival.
    pub deliveries_per_s: f64,
    /// Over the first and the last tenth of the drain's arrivals: does it slow down as it goes?
    pub drain_start_per_s: f64,
    pub drain_end_per_s: f64,
    /// From starting `hookgate work` to the last arrival (includes its start-up).
    pub drain_wall_s: f64,
    pub peak_rss_mib: f64,
    /// The receiver that took the backlog in.
    pub receiver_peak_rss_mib: f64,
    pub gateway_warnings: usize,
}

impl E2eReport {
    pub fn print(&self) {
        eprintln!(
            "e2e w{}: idle ({:.0}/s) accept->delivery {}",
            self.workers,
            self.idle_rate,
            self.idle_delivery.line()
        );
        eprintln!(
            "e2e w{}:   {} delivered before their 200 arrived; {}",
            self.workers,
            self.delivered_before_accept,
            self.idle.line()
        );
        eprintln!(
            "e2e w{}: drain {} events in {:.2} s (wall {:.2} s) = {:.0} deliveries/s; worker peak RSS {:.1} MiB; {} warnings in its log",
            self.workers,
            self.drain.expected,
            self.drain.expected as f64 / self.deliveries_per_s.max(1e-9),
            self.drain_wall_s,
            self.deliveries_per_s,
            self.peak_rss_mib,
            self.gateway_warnings
        );
        eprintln!(
            "e2e w{}:   first tenth {:.0}/s, last tenth {:.0}/s; receiver peak RSS {:.1} MiB",
            self.workers, self.drain_start_per_s, self.drain_end_per_s, self.receiver_peak_rss_mib
        );
        eprintln!("e2e w{}:   {}", self.workers, self.drain.line());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("sink: {0}")]
    Sink(#[from] std::io::Error),
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(
        "{phase}: {} of {} events were not delivered within {within:?} ({})",
        .tally.missing, .tally.expected, .tally.line()
    )]
    Lost {
        phase: String,
        within: Duration,
        tally: Tally,
    },
}

const IDLE_WAIT: Duration = Duration::from_secs(30);
const DRAIN_WAIT: Duration = Duration::from_secs(300);

/// The event ids of the accepted webhooks.
fn ids(accepts: &load::Accepts) -> HashSet<Uuid> {
    accepts.iter().map(|(id, _)| *id).collect()
}

pub async fn run(setup: &Setup, plan: &E2ePlan) -> Result<Vec<E2eReport>, E2eError> {
    let sink = Sink::start().await?;
    setup.migrate().await?;
    let client = load::client()?;
    let mut reports = Vec::new();
    for &workers in &plan.workers {
        // Idle: accept -> delivery latency with the pipeline otherwise quiet.
        setup.reset().await?;
        sink.clear();
        let gateway = setup.start(Role::Run, Some(&sink.url), workers).await?;
        let url = format!(
            "http://{}/webhooks/{}",
            gateway.listen,
            crate::gateway::SOURCE
        );
        let requests = load::prepare(setup.preset, setup.secret(), plan.idle_count, plan.size);
        let mode = Mode::Open {
            rate: plan.idle_rate,
            max_in_flight: 64,
        };
        let (ingest, accepts) = load::run(client.clone(), vec![url], requests, mode).await;
        ingest.print(&format!("e2e w{workers} idle ingest"));
        let phase = format!("e2e w{workers} idle");
        let idle = sink.wait_for(phase, &ids(&accepts), IDLE_WAIT).await?;
        let arrivals = sink.first_arrivals();
        let mut histogram = report::histogram();
        let mut early = 0;
        for (id, accepted) in &accepts {
            // Every accepted event arrived: the wait above fails the run otherwise.
            let arrived = arrivals[id];
            if arrived < *accepted {
                early += 1;
            }
            let micros = arrived.saturating_duration_since(*accepted).as_micros();
            report::record(&mut histogram, micros as u64);
        }
        let mut warnings = gateway.problems().len();
        gateway.stop().await;

        // Drain: the worker alone against a backlog.
        setup.reset().await?;
        sink.clear();
        let receiver = setup.start(Role::Receive, Some(&sink.url), workers).await?;
        let url = format!(
            "http://{}/webhooks/{}",
            receiver.listen,
            crate::gateway::SOURCE
        );
        let requests = load::prepare(setup.preset, setup.secret(), plan.backlog, plan.size);
        let mode = Mode::Closed {
            concurrency: plan.ingest_concurrency,
        };
        let (ingest, backlog) = load::run(client.clone(), vec![url], requests, mode).await;
        ingest.print(&format!("e2e w{workers} backlog ingest"));
        let mut problems = receiver.problems();
        let receiver_memory = receiver.stop().await;
        setup.analyze().await?;
        let started = Instant::now();
        let worker = setup.start(Role::Work, Some(&sink.url), workers).await?;
        let phase = format!("e2e w{workers} drain");
        let drain = sink.wait_for(phase, &ids(&backlog), DRAIN_WAIT).await?;
        let mut times: Vec<Instant> = sink.first_arrivals().into_values().collect();
        times.sort();
        let (first, last) = (
            times.first().copied().unwrap_or(started),
            times.last().copied().unwrap_or(started),
        );
        let span = last.duration_since(first).as_secs_f64().max(1e-9);
        let tenth = times.len() / 10;
        let rate = |slice: &[Instant]| match (slice.first(), slice.last()) {
            (Some(a), Some(b)) => slice.len() as f64 / b.duration_since(*a).as_secs_f64().max(1e-9),
            _ => 0.0,
        };
        problems.extend(worker.problems());
        for line in problems.iter().take(5) {
            eprintln!("e2e w{workers}:   log: {line}");
        }
        warnings += problems.len();
        let memory = worker.stop().await;
        let report = E2eReport {
            workers,
            idle_rate: plan.idle_rate,
            idle_delivery: Latency::of(&histogram),
            delivered_before_accept: early,
            idle,
            drain,
            deliveries_per_s: drain.expected as f64 / span,
            drain_start_per_s: rate(&times[..tenth]),
            drain_end_per_s: rate(&times[times.len() - tenth..]),
            drain_wall_s: last.duration_since(started).as_secs_f64(),
            peak_rss_mib: memory.mib(),
            receiver_peak_rss_mib: receiver_memory.mib(),
            gateway_warnings: warnings,
        };
        report.print();
        reports.push(report);
    }
    setup.reset().await?;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// POSTs one delivery to `sink`, as hookgate sends it: `webhook-id` is
    /// `<event id>_<destination>`, or absent.
    async fn deliver(sink: &Sink, event: Option<Uuid>) {
        let client = reqwest::Client::new();
        let mut request = client.post(&sink.url);
        if let Some(event) = event {
            request = request.header("webhook-id", format!("{event}_sink"));
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn every_arrival_is_counted_and_repeats_are_duplicates() {
        let sink = Sink::start().await.unwrap();
        let (a, b, stranger) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for event in [Some(a), Some(a), Some(b), Some(stranger), None] {
            deliver(&sink, event).await;
        }
        let sent = HashSet::from([a, b]);
        let tally = sink
            .wait_for("test".into(), &sent, Duration::from_secs(5))
            .await
            .unwrap();
        let counts = (
            tally.expected,
            tally.deliveries,
            tally.duplicates,
            tally.missing,
            tally.unexpected,
        );
        assert_eq!(counts, (2, 3, 1, 0, 2), "{tally:?}");
    }

    #[tokio::test]
    async fn an_event_that_never_arrives_fails_the_wait_naming_the_loss() {
        let sink = Sink::start().await.unwrap();
        let (arrived, lost) = (Uuid::new_v4(), Uuid::new_v4());
        deliver(&sink, Some(arrived)).await;
        let sent = HashSet::from([arrived, lost]);
        let error = sink
            .wait_for("drain".into(), &sent, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, E2eError::Lost { tally, .. } if tally.missing == 1),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with("drain: 1 of 2 events were not delivered"),
            "{message}"
        );
    }
}
