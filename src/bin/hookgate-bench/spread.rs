//! Ingest spread over 1, 2, 4... `hookgate receive` processes against one Postgres and one
//! Redis: where adding receivers stops helping.

use crate::e2e::E2eError;
use crate::gateway::{Role, Setup};
use crate::load::{self, IngestReport, Mode};
use serde::Serialize;

/// Nobody listens there: receivers store each event's delivery row, as in production, and
/// never deliver.
const NOWHERE: &str = "http://127.0.0.1:9/";
/// Requests per receiver sent first, unmeasured: connection pools and plans warm up.
const WARMUP: usize = 500;

pub struct SpreadPlan {
    pub receivers: Vec<usize>,
    pub count: usize,
    pub concurrency: usize,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpreadReport {
    pub receivers: usize,
    pub ingest: IngestReport,
    /// Summed over the receivers.
    pub peak_rss_mib: f64,
    pub gateway_warnings: usize,
}

pub async fn run(setup: &Setup, plan: &SpreadPlan) -> Result<Vec<SpreadReport>, E2eError> {
    setup.migrate().await?;
    let client = load::client()?;
    let mut reports = Vec::new();
    for &n in &plan.receivers {
        setup.reset().await?;
        let mut receivers = Vec::new();
        for _ in 0..n {
            receivers.push(setup.start(Role::Receive, Some(NOWHERE), 1).await?);
        }
        let urls: Vec<String> = (receivers.iter())
            .map(|r| format!("http://{}/webhooks/{}", r.listen, crate::gateway::SOURCE))
            .collect();
        let warmup = load::prepare(setup.preset, setup.secret(), WARMUP * n, plan.size);
        let mode = Mode::Closed {
            concurrency: plan.concurrency,
        };
        load::run(client.clone(), urls.clone(), warmup, mode).await;
        let requests = load::prepare(setup.preset, setup.secret(), plan.count, plan.size);
        let (ingest, _) = load::run(client.clone(), urls, requests, mode).await;
        ingest.print(&format!("spread x{n} receivers"));
        let mut report = SpreadReport {
            receivers: n,
            ingest,
            peak_rss_mib: 0.0,
            gateway_warnings: 0,
        };
        for receiver in receivers {
            report.gateway_warnings += receiver.problems().len();
            report.peak_rss_mib += receiver.stop().await.mib();
        }
        reports.push(report);
    }
    setup.reset().await?;
    Ok(reports)
}
