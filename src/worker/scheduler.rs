//! Puts due work back on the streams: retries whose backoff is over, events whose XADD failed
//! at ingest, and everything a Redis that lost its data forgot. Postgres knows what is owed;
//! the `queued` set says what is already on a stream, so nothing is enqueued twice.
//!
//! What can never be delivered is not put back: deliveries whose source or destination left
//! the configuration are dead-lettered when the scheduler starts, rather than re-queued to a
//! stream no worker reads, and again whenever a due one shows up (a worker still running an
//! older configuration scheduled it).

use super::alerts::Alerts;
use super::buried;
use crate::queue::QueueError;
use crate::queue::stream::Streams;
use crate::store::deliveries::Due;
use crate::store::routes::Routes;
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PAGE: i64 = 1000;
/// Pages per round: a backlog beyond this is walked over the following rounds.
const MAX_PAGES: usize = 20;
const GAUGE_PERIOD: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub async fn run(
    store: Store,
    streams: Streams,
    sources: Vec<String>,
    routes: Routes,
    alerts: Alerts,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cursor: Option<Due> = None;
    let mut gauges_at: Option<Instant> = None;
    let mut unrouted_left = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if unrouted_left {
            unrouted_left = !bury_unrouted(&store, &routes).await;
        }
        for _ in 0..MAX_PAGES {
            match requeue_page(&store, &streams, &routes, cursor.as_ref()).await {
                Ok(page) => {
                    unrouted_left |= page.unrouted;
                    cursor = page.next;
                    if cursor.is_none() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "scheduler round failed; retrying next round");
                    break;
                }
            }
        }
        if gauges_at.is_none_or(|at| at.elapsed() >= GAUGE_PERIOD) {
            gauges_at = Some(Instant::now());
            update_gauges(&store, &streams, &sources, &alerts).await;
        }
    }
}

/// What one page of due deliveries showed.
struct Page {
    /// The page's last row when the page was full (more may follow), `None` at the end.
    next: Option<Due>,
    /// A due delivery's source is no longer configured.
    unrouted: bool,
}

/// Enqueues the unqueued events of one page of due deliveries whose source is configured.
async fn requeue_page(
    store: &Store,
    streams: &Streams,
    routes: &Routes,
    after: Option<&Due>,
) -> Result<Page, RoundError> {
    let page = store.due(after, PAGE).await?;
    let mut unrouted = false;
    let mut by_source: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for due in &page {
        if !routes.has_source(&due.source) {
            unrouted = true;
            continue;
        }
        let ids = by_source.entry(&due.source).or_default();
        if !ids.contains(&due.event_id) {
            ids.push(due.event_id);
        }
    }
    for (source, ids) in by_source {
        let missing = streams.unqueued(source, &ids).await?;
        if !missing.is_empty() {
            streams.enqueue_many(source, &missing).await?;
            metrics::counter!("hookgate_requeued_total", "source" => source.to_string())
                .increment(missing.len() as u64);
        }
    }
    Ok(Page {
        next: (page.len() as i64 == PAGE)
            .then(|| page.last().cloned())
            .flatten(),
        unrouted,
    })
}

/// Dead-letters the deliveries that can never be made. Returns whether that is done.
async fn bury_unrouted(store: &Store, routes: &Routes) -> bool {
    match store.bury_unrouted(routes).await {
        Ok(rows) => {
            buried(&rows);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot dead-letter deliveries no longer configured; trying again next round");
            false
        }
    }
}

async fn update_gauges(store: &Store, streams: &Streams, sources: &[String], alerts: &Alerts) {
    alerts.observe(store).await;
    if let Ok(depths) = store.dead_letter_depth().await {
        for source in sources {
            let depth = depths
                .iter()
                .find(|(s, _)| s == source)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!("hookgate_dead_letter_depth", "source" => source.clone())
                .set(depth as f64);
        }
    }
    for source in sources {
        if let Ok(pending) = streams.pending(source).await {
            metrics::gauge!("hookgate_stream_pending", "source" => source.clone())
                .set(pending as f64);
        }
    }
}
