//! Depth gauges and alert checks, every [`PERIOD`]: open dead letters per source (from the
//! maintained counts, which this also folds) and entries pending in each source's group.

use super::alerts::Alerts;
use crate::queue::stream::Streams;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PERIOD: Duration = Duration::from_secs(5);

pub async fn run(
    store: Store,
    streams: Streams,
    sources: Vec<String>,
    alerts: Arc<Alerts>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = store.fold_dead_letter_counts().await {
            tracing::warn!(%error, "cannot fold the dead-letter counts");
        }
        alerts.observe(&store).await;
        if let Ok(depths) = store.dead_letter_depth().await {
            for source in &sources {
                let depth = depths
                    .iter()
                    .find(|(s, _)| s == source)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("hookgate_dead_letter_depth", "source" => source.clone())
                    .set(depth as f64);
            }
        }
        for source in &sources {
            if let Ok(pending) = streams.pending(source).await {
                metrics::gauge!("hookgate_stream_pending", "source" => source.clone())
                    .set(pending as f64);
            }
        }
    }
}
