//! The destination throttle under load: a backlog ingested first, then drained by several
//! `hookgate work` processes sharing one `rate_limit`, measured at the sink.

use crate::e2e::{E2eError, Sink, Tally};
use crate::gateway::{Role, Setup};
use crate::load::{self, Mode};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct ThrottlePlan {
    /// Deliveries per second the destination allows.
    pub rate: u32,
    pub processes: usize,
    pub workers: usize,
    pub events: usize,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThrottleReport {
    pub rate_limit: u32,
    pub processes: usize,
    pub events: usize,
    /// Events over first to last arrival.
    pub achieved_per_s: f64,
    /// `achieved_per_s` against the limit, in percent (negative: below it).
    pub deviation_pct: f64,
    /// Arrivals in each whole second from the first: the median and the busiest.
    pub median_second: usize,
    pub busiest_second: usize,
    pub tally: Tally,
    pub gateway_warnings: usize,
}

impl ThrottleReport {
    pub fn print(&self) {
        eprintln!(
            "throttle {}/s x{} processes: {} events at {:.1}/s ({:+.1} %), per second median {} busiest {}; {}; {} warnings in the logs",
            self.rate_limit,
            self.processes,
            self.events,
            self.achieved_per_s,
            self.deviation_pct,
            self.median_second,
            self.busiest_second,
            self.tally.line(),
            self.gateway_warnings
        );
    }
}

pub async fn run(setup: &Setup, plan: &ThrottlePlan) -> Result<ThrottleReport, E2eError> {
    let sink = Sink::start().await?;
    setup.migrate().await?;
    setup.reset().await?;
    let limited = Setup {
        destination_keys: format!("rate_limit = \"{}/s\"\n", plan.rate),
        ..setup.clone()
    };
    let receiver = limited
        .start(Role::Receive, Some(&sink.url), plan.workers)
        .await?;
    let url = format!(
        "http://{}/webhooks/{}",
        receiver.listen,
        crate::gateway::SOURCE
    );
    let requests = load::prepare(setup.preset, setup.secret(), plan.events, plan.size);
    let mode = Mode::Closed { concurrency: 32 };
    let (ingest, accepts) = load::run(load::client()?, url, requests, mode).await;
    ingest.print("throttle backlog ingest");
    let mut warnings = receiver.problems().len();
    receiver.stop().await;
    setup.analyze().await?;
    let mut workers = Vec::new();
    for _ in 0..plan.processes {
        workers.push(
            limited
                .start(Role::Work, Some(&sink.url), plan.workers)
                .await?,
        );
    }
    let sent: HashSet<Uuid> = accepts.iter().map(|(id, _)| *id).collect();
    // Twice the schedule, and a minute for start-up and a loaded machine.
    let within = Duration::from_secs_f64(2.0 * plan.events as f64 / plan.rate as f64 + 60.0);
    let tally = sink.wait_for("throttle".into(), &sent, within).await?;
    for worker in workers {
        warnings += worker.problems().len();
        worker.stop().await;
    }
    let mut times: Vec<Instant> = sink.first_arrivals().into_values().collect();
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    let span = last.duration_since(first).as_secs_f64().max(1e-9);
    let achieved = (times.len() - 1) as f64 / span;
    let mut seconds = vec![0usize; span as usize + 1];
    for at in &times {
        seconds[at.duration_since(first).as_secs() as usize] += 1;
    }
    // The last second is partial: only whole ones say what a second holds.
    let mut whole: Vec<usize> = seconds[..seconds.len() - 1].to_vec();
    whole.sort_unstable();
    setup.reset().await?;
    Ok(ThrottleReport {
        rate_limit: plan.rate,
        processes: plan.processes,
        events: plan.events,
        achieved_per_s: achieved,
        deviation_pct: (achieved / plan.rate as f64 - 1.0) * 100.0,
        median_second: whole.get(whole.len() / 2).copied().unwrap_or(0),
        busiest_second: whole.last().copied().unwrap_or(0),
        tally,
        gateway_warnings: warnings,
    })
}
