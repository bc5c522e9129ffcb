//! A backlog ingested first, then drained by N `hookgate work` processes, measured at the
//! sink: how delivery scales with processes, and, with a destination `rate_limit`, whether the
//! processes together hold it.

use crate::e2e::{E2eError, Sink, Tally};
use crate::gateway::{Role, Setup};
use crate::load::{self, Mode};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct DrainPlan {
    /// The destination's `rate_limit`, per second; `None`: none.
    pub rate: Option<u32>,
    pub processes: usize,
    pub workers: usize,
    pub events: usize,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    pub rate_limit: Option<u32>,
    pub processes: usize,
    pub events: usize,
    /// Events over first to last arrival.
    pub achieved_per_s: f64,
    /// `achieved_per_s` against the limit, in percent (negative: below it).
    pub deviation_pct: Option<f64>,
    /// Arrivals in each whole second from the first: the median and the busiest.
    pub median_second: usize,
    pub busiest_second: usize,
    pub tally: Tally,
    pub gateway_warnings: usize,
}

impl DrainReport {
    pub fn print(&self) {
        let limit = match (self.rate_limit, self.deviation_pct) {
            (Some(rate), Some(deviation)) => format!("rate_limit {rate}/s ({deviation:+.1} %)"),
            _ => "no rate_limit".to_string(),
        };
        eprintln!(
            "drain x{} processes: {} events at {:.1}/s, {limit}, per second median {} busiest {}; {}; {} warnings in the logs",
            self.processes,
            self.events,
            self.achieved_per_s,
            self.median_second,
            self.busiest_second,
            self.tally.line(),
            self.gateway_warnings
        );
    }
}

pub async fn run(setup: &Setup, plan: &DrainPlan) -> Result<DrainReport, E2eError> {
    let sink = Sink::start().await?;
    setup.migrate().await?;
    setup.reset().await?;
    let limited = Setup {
        destination_keys: (plan.rate)
            .map(|rate| format!("rate_limit = \"{rate}/s\"\n"))
            .unwrap_or_default(),
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
    let (ingest, accepts) = load::run(load::client()?, vec![url], requests, mode).await;
    ingest.print("drain backlog ingest");
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
    // Twice the schedule (or a generous 500/s without a limit), and a minute for start-up
    // and a loaded machine.
    let per_s = plan.rate.unwrap_or(500) as f64;
    let within = Duration::from_secs_f64(2.0 * plan.events as f64 / per_s + 60.0);
    let tally = sink.wait_for("drain".into(), &sent, within).await?;
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
    Ok(DrainReport {
        rate_limit: plan.rate,
        processes: plan.processes,
        events: plan.events,
        achieved_per_s: achieved,
        deviation_pct: plan.rate.map(|rate| (achieved / rate as f64 - 1.0) * 100.0),
        median_second: whole.get(whole.len() / 2).copied().unwrap_or(0),
        busiest_second: whole.last().copied().unwrap_or(0),
        tally,
        gateway_warnings: warnings,
    })
}
