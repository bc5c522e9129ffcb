//! The suite: floors and ingest in one invocation, against gateways it starts itself, each
//! measurement repeated and reported as medians, and ingest as a ratio to each floor.
//!
//! Ingest runs use `hookgate receive` (no worker in the process), so the figure is the
//! receiver's alone; its source has one HTTP destination, so each accepted webhook also writes
//! its `deliveries` row as in production. Each run gets a fresh gateway and an emptied
//! database, so runs neither warm each other up nor slow each other down with table growth.

use crate::floor::{self, FloorPlan, FloorReport};
use crate::gateway::{GatewayError, Memory, Role, SOURCE, Setup};
use crate::load::{self, IngestReport, Mode};
use crate::report::{Latency, median};
use serde::Serialize;

/// Where the runs' source would deliver; nothing delivers during ingest runs (no worker).
const UNUSED_DESTINATION: &str = "http://127.0.0.1:9/never-called";

pub struct SuitePlan {
    pub count: usize,
    pub concurrency: Vec<usize>,
    pub sizes: Vec<usize>,
    pub rate_seconds: u64,
    pub repeat: usize,
    pub batch: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Floor(#[from] floor::FloorError),
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One ingest configuration, all its runs and their medians.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSeries {
    pub label: String,
    pub size: usize,
    pub mode: Mode,
    pub accepted_per_s: f64,
    pub latency: Latency,
    pub peak_rss_mib: f64,
    pub errors: u64,
    pub gateway_warnings: usize,
    pub runs: Vec<IngestRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestRun {
    pub report: IngestReport,
    pub memory: Memory,
    pub gateway_warnings: usize,
}

impl IngestSeries {
    fn of(label: String, size: usize, mode: Mode, runs: Vec<IngestRun>) -> Self {
        let latencies: Vec<Latency> = runs.iter().map(|r| r.report.latency).collect();
        Self {
            label,
            size,
            mode,
            accepted_per_s: median(runs.iter().map(|r| r.report.accepted_per_s)),
            latency: Latency::median(&latencies),
            peak_rss_mib: runs.iter().map(|r| r.memory.mib()).fold(0.0, f64::max),
            errors: runs.iter().flat_map(|r| r.report.errors.values()).sum(),
            gateway_warnings: runs.iter().map(|r| r.gateway_warnings).sum(),
            runs,
        }
    }

    fn print(&self) {
        eprintln!(
            "{:<28} {:>7.0} accepted/s  {}  peak RSS {:.1} MiB  errors {}  gateway warnings {}",
            self.label,
            self.accepted_per_s,
            self.latency.line(),
            self.peak_rss_mib,
            self.errors,
            self.gateway_warnings
        );
    }
}

/// Medians of one concurrency's floor runs, per second.
#[derive(Debug, Clone, Serialize)]
pub struct FloorSeries {
    pub concurrency: usize,
    pub insert: f64,
    pub insert_with_delivery: f64,
    pub insert_batch_rows: f64,
    pub xadd: f64,
    pub xadd_multi: f64,
    pub insert_latency: Latency,
    pub runs: Vec<FloorReport>,
}

impl FloorSeries {
    fn of(concurrency: usize, runs: Vec<FloorReport>) -> Self {
        let m = |f: fn(&FloorReport) -> f64| median(runs.iter().map(f));
        let latencies: Vec<Latency> = runs.iter().map(|r| r.insert.latency).collect();
        Self {
            concurrency,
            insert: m(|r| r.insert.per_s),
            insert_with_delivery: m(|r| r.insert_with_delivery.per_s),
            insert_batch_rows: m(|r| r.insert_batch.per_s),
            xadd: m(|r| r.xadd.per_s),
            xadd_multi: m(|r| r.xadd_multi.per_s),
            insert_latency: Latency::median(&latencies),
            runs,
        }
    }
}

/// 1 KiB ingest at one concurrency over each floor at the same concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub concurrency: usize,
    pub ingest_per_s: f64,
    pub over_insert: f64,
    pub over_insert_with_delivery: f64,
    pub over_insert_batch: f64,
    pub over_xadd: f64,
    pub over_xadd_multi: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub repeat: usize,
    pub count: usize,
    pub batch: usize,
    pub floors: Vec<FloorSeries>,
    pub ingest: Vec<IngestSeries>,
    pub fixed_rate: Option<IngestSeries>,
    pub ratios: Vec<Ratios>,
}

impl SuiteReport {
    pub fn print(&self) {
        eprintln!("\n== medians of {} runs ==", self.repeat);
        for f in &self.floors {
            eprintln!(
                "floor c{:<3} insert {:>7.0}/s  insert+delivery {:>7.0}/s  insert x{} {:>7.0} rows/s  xadd {:>7.0}/s  multi xadd+sadd {:>7.0}/s",
                f.concurrency,
                f.insert,
                f.insert_with_delivery,
                self.batch,
                f.insert_batch_rows,
                f.xadd,
                f.xadd_multi
            );
        }
        for series in self.ingest.iter().chain(&self.fixed_rate) {
            series.print();
        }
        for r in &self.ratios {
            eprintln!(
                "ratio c{:<3} ingest {:.0}/s = {:.2}x insert floor (target >= 2), {:.2}x insert+delivery, {:.3}x insert x{}, {:.3}x xadd, {:.3}x multi xadd+sadd",
                r.concurrency,
                r.ingest_per_s,
                r.over_insert,
                r.over_insert_with_delivery,
                r.over_insert_batch,
                self.batch,
                r.over_xadd,
                r.over_xadd_multi
            );
        }
    }
}

pub async fn run(setup: &Setup, plan: &SuitePlan) -> Result<SuiteReport, SuiteError> {
    setup.migrate().await?;
    let client = load::client()?;
    let first_c = plan.concurrency.first().copied().unwrap_or(16);
    let mut floor_runs: Vec<Vec<FloorReport>> = vec![Vec::new(); plan.concurrency.len()];
    let mut kib_runs: Vec<Vec<IngestRun>> = vec![Vec::new(); plan.concurrency.len()];
    let mut size_runs: Vec<Vec<IngestRun>> = vec![Vec::new(); plan.sizes.len()];
    // Interleaved, so a burst of outside load on this shared machine hits one run of
    // each kind rather than every run of one kind.
    for round in 1..=plan.repeat {
        eprintln!("== round {round}/{} ==", plan.repeat);
        for (i, &c) in plan.concurrency.iter().enumerate() {
            let floor_plan = FloorPlan {
                database_url: setup.database_url.clone(),
                redis_url: setup.redis_url.clone(),
                prefix: setup.prefix.clone(),
                count: plan.count,
                concurrency: c,
                batch: plan.batch,
            };
            let report = floor::run(&floor_plan).await?;
            report.print();
            floor_runs[i].push(report);
            let mode = Mode::Closed { concurrency: c };
            kib_runs[i].push(ingest_once(setup, &client, 1024, mode, plan.count).await?);
        }
        for (i, &size) in plan.sizes.iter().enumerate() {
            let mode = Mode::Closed {
                concurrency: first_c,
            };
            size_runs[i].push(ingest_once(setup, &client, size, mode, plan.count).await?);
        }
    }

    let mut ingest = Vec::new();
    for (&c, runs) in plan.concurrency.iter().zip(kib_runs) {
        let mode = Mode::Closed { concurrency: c };
        ingest.push(IngestSeries::of(
            format!("ingest 1KiB c{c}"),
            1024,
            mode,
            runs,
        ));
    }
    let floors: Vec<FloorSeries> = plan
        .concurrency
        .iter()
        .zip(floor_runs)
        .map(|(&c, runs)| FloorSeries::of(c, runs))
        .collect();
    let ratios = ingest
        .iter()
        .zip(&floors)
        .map(|(i, f)| Ratios {
            concurrency: f.concurrency,
            ingest_per_s: i.accepted_per_s,
            over_insert: i.accepted_per_s / f.insert,
            over_insert_with_delivery: i.accepted_per_s / f.insert_with_delivery,
            over_insert_batch: i.accepted_per_s / f.insert_batch_rows,
            over_xadd: i.accepted_per_s / f.xadd,
            over_xadd_multi: i.accepted_per_s / f.xadd_multi,
        })
        .collect();
    for (&size, runs) in plan.sizes.iter().zip(size_runs) {
        let mode = Mode::Closed {
            concurrency: first_c,
        };
        let label = format!(
            "ingest {} c{first_c}",
            bytesize::ByteSize(size as u64).display().iec()
        );
        ingest.push(IngestSeries::of(label, size, mode, runs));
    }

    // The latency target is at half the maximum rate, open loop.
    let best = ingest
        .iter()
        .filter(|s| s.size == 1024)
        .map(|s| s.accepted_per_s)
        .fold(0.0, f64::max);
    let fixed_rate = if plan.rate_seconds > 0 && best > 0.0 {
        let rate = (best / 2.0).floor().max(1.0);
        let count = (rate * plan.rate_seconds as f64) as usize;
        let mode = Mode::Open {
            rate,
            max_in_flight: 1024,
        };
        let mut runs = Vec::new();
        for round in 1..=plan.repeat {
            eprintln!("== fixed rate {rate:.0}/s, run {round}/{} ==", plan.repeat);
            runs.push(ingest_once(setup, &client, 1024, mode, count).await?);
        }
        Some(IngestSeries::of(
            format!("ingest 1KiB at {rate:.0}/s"),
            1024,
            mode,
            runs,
        ))
    } else {
        None
    };
    setup.reset().await?;
    Ok(SuiteReport {
        repeat: plan.repeat,
        count: plan.count,
        batch: plan.batch,
        floors,
        ingest,
        fixed_rate,
        ratios,
    })
}

/// One ingest run against a fresh `hookgate receive` on an emptied database.
async fn ingest_once(
    setup: &Setup,
    client: &reqwest::Client,
    size: usize,
    mode: Mode,
    count: usize,
) -> Result<IngestRun, SuiteError> {
    setup.reset().await?;
    let gateway = setup
        .start(Role::Receive, Some(UNUSED_DESTINATION), 1)
        .await?;
    let url = format!("http://{}/webhooks/{SOURCE}", gateway.listen);
    // Opens the connections and warms the gateway's pools; not measured.
    let warmup = load::prepare(setup.preset, setup.secret(), 500, size);
    let warm_mode = match mode {
        Mode::Closed { .. } => mode,
        Mode::Open { .. } => Mode::Closed { concurrency: 16 },
    };
    load::run(client.clone(), vec![url.clone()], warmup, warm_mode).await;
    let requests = load::prepare(setup.preset, setup.secret(), count, size);
    let (report, _) = load::run(client.clone(), vec![url], requests, mode).await;
    report.print(&format!("ingest {size} B"));
    let memory = gateway.memory();
    let gateway_warnings = gateway.problems().len();
    eprintln!(
        "ingest {size} B:   gateway peak RSS {:.1} MiB (VmHWM {} KiB)",
        memory.mib(),
        memory.hwm_kib
    );
    gateway.stop().await;
    Ok(IngestRun {
        report,
        memory,
        gateway_warnings,
    })
}
