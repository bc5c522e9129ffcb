//! Depth gauges and alert checks, every [`PERIOD`]: open dead letters per source (from the
//! maintained counts, which this also folds), entries pending in each source's group, and
//! each destination's state.

use super::alerts::Alerts;
use crate::queue::stream::Streams;
use crate::store::Store;
use crate::store::routes::Routes;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PERIOD: Duration = Duration::from_secs(5);

pub async fn run(
    store: Store,
    streams: Streams,
    sources: Vec<String>,
    routes: Routes,
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
        destination_states(&store, &routes).await;
        for source in &sources {
            if let Ok(pending) = streams.pending(source).await {
                metrics::gauge!("hookgate_stream_pending", "source" => source.clone())
                    .set(pending as f64);
            }
        }
    }
}

/// Each state a destination can be in; its gauge is 1 for the current one.
const STATES: [&str; 4] = ["closed", "open", "half_open", "paused"];

async fn destination_states(store: &Store, routes: &Routes) {
    let states = match store.destination_states().await {
        Ok(states) => states,
        Err(error) => {
            tracing::warn!(%error, "cannot read the destinations' states");
            return;
        }
    };
    for (source, destination) in routes.pairs() {
        let current = (states.iter())
            .find(|(s, d, _)| s == source && d == destination)
            .map_or("closed", |(_, _, state)| state.as_str());
        for state in STATES {
            metrics::gauge!("hookgate_destination_state", "source" => source.to_string(), "destination" => destination.to_string(), "state" => state)
                .set(if state == current { 1.0 } else { 0.0 });
        }
    }
}
