//! Counts this receiver's answers per source, minute and outcome in memory and adds them to
//! Postgres every [`PERIOD`], so the overview shows duplicates and refusals (which leave no
//! event row) from every receiver. Counting is a map update under a lock, never a round trip;
//! counts Postgres does not take are kept for the next flush (at most [`KEPT`] of them).

use crate::store::Store;
use crate::store::ingress_counts::{Count, KEPT};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PERIOD: Duration = Duration::from_secs(1);

/// Source -> `(minute as Unix seconds, outcome)` -> requests. Keyed by source first, so that
/// counting a request allocates nothing once its source has been seen.
type Counts = HashMap<String, HashMap<(i64, &'static str), i64>>;

#[derive(Clone, Default)]
pub struct Tally {
    counts: Arc<Mutex<Counts>>,
}

impl Tally {
    pub fn record(&self, source: &str, outcome: &'static str) {
        let minute = Utc::now().timestamp().div_euclid(60) * 60;
        let mut counts = self.counts.lock().expect("tally lock");
        if !counts.contains_key(source) {
            counts.insert(source.to_string(), HashMap::new());
        }
        let by_minute = counts.get_mut(source).expect("inserted above");
        *by_minute.entry((minute, outcome)).or_default() += 1;
    }

    /// Flushes every [`PERIOD`] until `shutdown`, then once more.
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = shutdown.cancelled() => true,
            };
            self.flush(&store).await;
            if stopping {
                return;
            }
        }
    }

    async fn flush(&self, store: &Store) {
        let taken = std::mem::take(&mut *self.counts.lock().expect("tally lock"));
        if taken.is_empty() {
            return;
        }
        let counts: Vec<Count> = (taken.iter())
            .flat_map(|(source, by_minute)| by_minute.iter().map(move |(key, n)| (source, key, n)))
            .filter_map(|(source, (minute, outcome), count)| {
                Some(Count {
                    minute: DateTime::from_timestamp(*minute, 0)?,
                    source: source.clone(),
                    outcome,
                    count: *count,
                })
            })
            .collect();
        if let Err(error) = store.add_ingress_counts(&counts).await {
            tracing::warn!(%error, "cannot record the request counts; keeping them for the next try");
            let oldest = (Utc::now() - KEPT).timestamp();
            let mut counts = self.counts.lock().expect("tally lock");
            for (source, by_minute) in taken {
                let kept = counts.entry(source).or_default();
                for ((minute, outcome), count) in by_minute {
                    if minute >= oldest {
                        *kept.entry((minute, outcome)).or_default() += count;
                    }
                }
            }
        }
    }
}
