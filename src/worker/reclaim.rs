//! Takes over entries whose consumer went silent (crashed, killed, partitioned) for longer
//! than the visibility timeout.

use super::Worker;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CLAIM_COUNT: usize = 100;

pub async fn run(worker: Arc<Worker>, shutdown: CancellationToken) {
    let visibility = worker.config.worker.visibility_timeout;
    let mut tick = tokio::time::interval((visibility / 4).max(Duration::from_millis(20)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for source in &worker.config.sources {
            let mut cursor = "0-0".to_string();
            loop {
                let claimed = worker
                    .streams
                    .reclaim(
                        &source.name,
                        &worker.consumer,
                        visibility,
                        &cursor,
                        CLAIM_COUNT,
                    )
                    .await;
                let (entries, next) = match claimed {
                    Ok(reply) => reply,
                    Err(error) => {
                        if !error.is_nogroup() {
                            tracing::warn!(%error, source = %source.name, "XAUTOCLAIM failed");
                        }
                        break;
                    }
                };
                if !entries.is_empty() {
                    metrics::counter!("hookgate_reclaimed_total", "source" => source.name.clone())
                        .increment(entries.len() as u64);
                    tracing::info!(source = %source.name, count = entries.len(), "reclaimed stalled entries");
                }
                let mut permits = Vec::with_capacity(entries.len());
                while permits.len() < entries.len() {
                    permits.push(tokio::select! {
                        p = worker.permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
                        () = shutdown.cancelled() => return,
                    });
                }
                worker.process(entries, permits).await;
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
        }
    }
}
