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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

/// When each delivery first arrived, by event id (retries keep the first time).
#[derive(Default)]
struct Arrivals {
    at: Mutex<HashMap<Uuid, Instant>>,
    changed: Notify,
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

    fn clear(&self) {
        self.arrivals.at.lock().expect("not poisoned").clear();
    }

    fn count(&self) -> usize {
        self.arrivals.at.lock().expect("not poisoned").len()
    }

    /// Waits until `n` deliveries have arrived or `within` has passed; returns the count.
    async fn wait_for(&self, n: usize, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrivals.changed.notified();
            let count = self.count();
            if count >= n {
                return count;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count();
            }
        }
    }

    fn arrivals(&self) -> HashMap<Uuid, Instant> {
        self.arrivals.at.lock().expect("not poisoned").clone()
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
    if let Some(event) = event {
        arrivals
            .at
            .lock()
            .expect("not poisoned")
            .entry(event)
            .or_insert(now);
        arrivals.changed.notify_waiters();
    }
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
    pub idle_missing: usize,
    pub backlog: usize,
    pub drained: usize,
    /// `drained` over first to last arrival.
    pub deliveries_per_s: f64,
    /// From starting `hookgate work` to the last arrival (includes its start-up).
    pub drain_wall_s: f64,
    pub peak_rss_mib: f64,
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
            "e2e w{}:   {} delivered before their 200 arrived, {} not delivered within 30 s",
            self.workers, self.delivered_before_accept, self.idle_missing
        );
        eprintln!(
            "e2e w{}: drain {}/{} in {:.2} s (wall {:.2} s) = {:.0} deliveries/s; worker peak RSS {:.1} MiB; {} warnings in its log",
            self.workers,
            self.drained,
            self.backlog,
            self.backlog as f64 / self.deliveries_per_s.max(1e-9),
            self.drain_wall_s,
            self.deliveries_per_s,
            self.peak_rss_mib,
            self.gateway_warnings
        );
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
        let (ingest, accepts) = load::run(client.clone(), url, requests, mode).await;
        ingest.print(&format!("e2e w{workers} idle ingest"));
        sink.wait_for(accepts.len(), Duration::from_secs(30)).await;
        let arrivals = sink.arrivals();
        let mut histogram = report::histogram();
        let (mut early, mut missing) = (0, 0);
        for (id, accepted) in &accepts {
            match arrivals.get(id) {
                Some(arrived) if arrived < accepted => {
                    early += 1;
                    report::record(&mut histogram, 0);
                }
                Some(arrived) => report::record(
                    &mut histogram,
                    arrived.duration_since(*accepted).as_micros() as u64,
                ),
                None => missing += 1,
            }
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
        let (ingest, _) = load::run(client.clone(), url, requests, mode).await;
        ingest.print(&format!("e2e w{workers} backlog ingest"));
        warnings += receiver.problems().len();
        receiver.stop().await;
        let started = Instant::now();
        let worker = setup.start(Role::Work, Some(&sink.url), workers).await?;
        let drained = sink
            .wait_for(ingest.accepted as usize, Duration::from_secs(300))
            .await;
        let times: Vec<Instant> = sink.arrivals().into_values().collect();
        let (first, last) = (
            times.iter().min().copied().unwrap_or(started),
            times.iter().max().copied().unwrap_or(started),
        );
        let span = last.duration_since(first).as_secs_f64().max(1e-9);
        warnings += worker.problems().len();
        let memory = worker.stop().await;
        let report = E2eReport {
            workers,
            idle_rate: plan.idle_rate,
            idle_delivery: Latency::of(&histogram),
            delivered_before_accept: early,
            idle_missing: missing,
            backlog: ingest.accepted as usize,
            drained,
            deliveries_per_s: drained as f64 / span,
            drain_wall_s: last.duration_since(started).as_secs_f64(),
            peak_rss_mib: memory.mib(),
            gateway_warnings: warnings,
        };
        report.print();
        reports.push(report);
    }
    setup.reset().await?;
    Ok(reports)
}
