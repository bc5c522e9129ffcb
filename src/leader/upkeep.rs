//! Keeps Redis bounded: every [`PERIOD`] the leader trims the destination streams (see
//! [`crate::queue::trim`]) and removes consumers of hookgate's group that are long gone. Two
//! leaders doing it at once for a moment is harmless.

use crate::config::{Config, Target};
use crate::queue::stream::Streams;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PERIOD: Duration = Duration::from_secs(10);

pub async fn run(config: Arc<Config>, streams: Streams, own: String, shutdown: CancellationToken) {
    let destinations = destination_streams(&config);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for (key, max_len) in &destinations {
            if let Err(error) = streams.trim_destination(key, *max_len).await {
                tracing::warn!(%error, stream = %key, "cannot trim the destination stream");
            }
        }
        for source in &config.sources {
            let limit = config.worker.consumer_idle_limit;
            if let Err(error) = streams
                .remove_idle_consumers(&source.name, &own, limit)
                .await
            {
                tracing::warn!(%error, source = %source.name, "cannot remove idle consumers");
            }
        }
    }
}

/// Each destination stream once, with the largest `max_len` any destination gives it.
fn destination_streams(config: &Config) -> BTreeMap<String, u64> {
    let mut streams = BTreeMap::new();
    for destination in config.sources.iter().flat_map(|s| &s.destinations) {
        if let Target::Stream { key, max_len } = &destination.target {
            let kept = streams.entry(key.clone()).or_insert(*max_len);
            *kept = (*kept).max(*max_len);
        }
    }
    streams
}
