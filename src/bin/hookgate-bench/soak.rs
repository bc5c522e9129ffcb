//! A long run through one `hookgate run` (receiver and worker at once): `count` webhooks sent
//! in chunks, closed loop, while the worker delivers them to the bench's sink. Per chunk: the
//! ingest rate and latency, the deliveries made meanwhile and the gateway's RSS at its end;
//! then the wait for the last delivery. Does anything grow or slow down as the run goes on?

use crate::e2e::{E2eError, Sink, Tally};
use crate::gateway::{Role, Setup};
use crate::load::{self, Mode};
use crate::report::Latency;
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long the worker gets after the last chunk to deliver what is left.
const FINISH_WAIT: Duration = Duration::from_secs(600);

pub struct SoakPlan {
    pub count: usize,
    pub chunks: usize,
    pub concurrency: usize,
    pub workers: usize,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chunk {
    pub sent: usize,
    pub accepted_per_s: f64,
    pub latency: Latency,
    /// Events delivered while the chunk was sent, per second.
    pub delivered_per_s: f64,
    /// Accepted and not yet delivered when the chunk ended.
    pub backlog: usize,
    pub rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub workers: usize,
    pub chunks: Vec<Chunk>,
    /// From the end of the last chunk to the last delivery.
    pub finish_s: f64,
    /// Deliveries per second over the whole run, first arrival to last.
    pub delivered_per_s: f64,
    pub peak_rss_mib: f64,
    pub tally: Tally,
    pub gateway_warnings: usize,
}

impl SoakReport {
    pub fn print(&self) {
        for (i, c) in self.chunks.iter().enumerate() {
            eprintln!(
                "soak chunk {:>2}: {} sent, {:.0} accepted/s, p50 {:.2} ms p99 {:.2} ms max {:.1} ms; {:.0} delivered/s; backlog {}; RSS {:.1} MiB",
                i + 1,
                c.sent,
                c.accepted_per_s,
                c.latency.p50_ms,
                c.latency.p99_ms,
                c.latency.max_ms,
                c.delivered_per_s,
                c.backlog,
                c.rss_mib
            );
        }
        eprintln!(
            "soak: the rest delivered {:.1} s after the last chunk; {:.0} deliveries/s overall; peak RSS {:.1} MiB; {} warnings in the log",
            self.finish_s, self.delivered_per_s, self.peak_rss_mib, self.gateway_warnings
        );
        eprintln!("soak: {}", self.tally.line());
    }
}

pub async fn run(setup: &Setup, plan: &SoakPlan) -> Result<SoakReport, E2eError> {
    let sink = Sink::start().await?;
    setup.migrate().await?;
    setup.reset().await?;
    let client = load::client()?;
    let gateway = setup
        .start(Role::Run, Some(&sink.url), plan.workers)
        .await?;
    let url = format!(
        "http://{}/webhooks/{}",
        gateway.listen,
        crate::gateway::SOURCE
    );
    let per_chunk = plan.count.div_ceil(plan.chunks.max(1));
    let mut sent_ids: HashSet<Uuid> = HashSet::with_capacity(plan.count);
    let mut chunks = Vec::new();
    let mut left = plan.count;
    while left > 0 {
        let n = per_chunk.min(left);
        left -= n;
        // Signed just before they are sent, so their timestamps are fresh and the bench holds
        // one chunk, not the whole run, in memory.
        let requests = load::prepare(setup.preset, setup.secret(), n, plan.size);
        let delivered_before = sink.delivered();
        let started = Instant::now();
        let mode = Mode::Closed {
            concurrency: plan.concurrency,
        };
        let (ingest, accepts) = load::run(client.clone(), vec![url.clone()], requests, mode).await;
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        sent_ids.extend(accepts.iter().map(|(id, _)| *id));
        let delivered = sink.delivered();
        chunks.push(Chunk {
            sent: n,
            accepted_per_s: ingest.accepted_per_s,
            latency: ingest.latency,
            delivered_per_s: (delivered - delivered_before) as f64 / elapsed,
            backlog: sent_ids.len().saturating_sub(delivered),
            rss_mib: gateway.rss_mib(),
        });
    }
    let ingested = Instant::now();
    let tally = sink
        .wait_for("soak".to_string(), &sent_ids, FINISH_WAIT)
        .await?;
    let finish_s = ingested.elapsed().as_secs_f64();
    let times: Vec<Instant> = sink.first_arrivals().into_values().collect();
    let span = match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) => last.duration_since(*first).as_secs_f64().max(1e-9),
        _ => 1e-9,
    };
    let gateway_warnings = gateway.problems().len();
    let memory = gateway.stop().await;
    let report = SoakReport {
        workers: plan.workers,
        chunks,
        finish_s,
        delivered_per_s: times.len() as f64 / span,
        peak_rss_mib: memory.mib(),
        tally,
        gateway_warnings,
    };
    report.print();
    Ok(report)
}
