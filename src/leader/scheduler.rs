//! Puts owed work on the streams: retries whose backoff is over, deliveries whose worker died
//! with their lease, events whose enqueue failed, and everything a Redis that lost its data
//! forgot. Postgres knows what is owed: each pending delivery's `requeue_at` says when the
//! scheduler must next look at it (migration 0008 says who sets it), so a tick reads only the
//! rows whose time has come, however many deliveries wait on the streams.
//!
//! What can never be delivered is not put back: deliveries whose source or destination left
//! the configuration are dead-lettered when the scheduler starts, rather than re-queued to a
//! stream no worker reads, and again whenever a due one shows up (a worker still running an
//! older configuration scheduled it).

use crate::queue::QueueError;
use crate::queue::stream::Streams;
use crate::store::requeue::Requeue;
use crate::store::routes::Routes;
use crate::store::{Store, StoreError};
use crate::worker::buried;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PAGE: i64 = 1000;
/// Pages per tick: a longer backlog is worked through over the following ticks.
const MAX_PAGES: usize = 20;

#[derive(Debug, thiserror::Error)]
enum TickError {
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
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unrouted_left = true;
    // Each source's epoch as last recorded in Postgres, once read.
    let mut epochs: HashMap<String, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if unrouted_left {
            unrouted_left = !bury_unrouted(&store, &routes).await;
        }
        for source in &sources {
            if let Err(error) = check_epoch(&store, &streams, source, &mut epochs).await {
                tracing::warn!(%error, source, "cannot check the source's Redis epoch; retrying next tick");
            }
        }
        for _ in 0..MAX_PAGES {
            match requeue_page(&store, &streams, &routes).await {
                Ok(page) => {
                    unrouted_left |= page.unrouted;
                    // Unrouted rows stay at the page's head until buried next tick.
                    if !page.full || page.unrouted {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "scheduler tick failed; retrying next tick");
                    break;
                }
            }
        }
    }
}

/// What one page of due rows showed.
struct Page {
    /// More rows may be due.
    full: bool,
    /// A due delivery's source is no longer configured.
    unrouted: bool,
}

/// Enqueues what one page of due rows owes, and records them as queued.
async fn requeue_page(
    store: &Store,
    streams: &Streams,
    routes: &Routes,
) -> Result<Page, TickError> {
    let rows = store.due_requeues(PAGE).await?;
    let mut unrouted = false;
    let mut by_source: BTreeMap<&str, Vec<Requeue>> = BTreeMap::new();
    for row in &rows {
        match routes.has_source(&row.source) {
            true => by_source.entry(&row.source).or_default().push(row.clone()),
            false => unrouted = true,
        }
    }
    for (source, rows) in by_source {
        let (checked, owed): (Vec<&Requeue>, Vec<&Requeue>) =
            rows.iter().partition(|r| r.requeue_check);
        let mut add: Vec<Uuid> = streams.unqueued(source, &event_ids(&checked)).await?;
        add.extend(event_ids(&owed));
        add.sort_unstable();
        add.dedup();
        if !add.is_empty() {
            streams.enqueue_many(source, &add).await?;
            metrics::counter!("hookgate_requeued_total", "source" => source.to_string())
                .increment(add.len() as u64);
        }
        store.requeued(&rows).await?;
    }
    Ok(Page {
        full: rows.len() as i64 == PAGE,
        unrouted,
    })
}

fn event_ids(rows: &[&Requeue]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Requeues `source`'s pending deliveries when its Redis keys lost their data: their epoch is
/// missing, or not the one recorded.
async fn check_epoch(
    store: &Store,
    streams: &Streams,
    source: &str,
    epochs: &mut HashMap<String, String>,
) -> Result<(), TickError> {
    let known = match epochs.get(source) {
        Some(epoch) => Some(epoch.clone()),
        None => store.stream_epoch(source).await?,
    };
    let current = streams.epoch(source).await?;
    if let (Some(current), Some(known)) = (&current, &known)
        && current == known
    {
        epochs.insert(source.to_string(), known.clone());
        return Ok(());
    }
    // The epoch goes into Redis first: should Redis lose it again before the recovery is
    // recorded, the next tick recovers again.
    let epoch = match current {
        Some(epoch) => epoch,
        None => {
            let fresh = Uuid::new_v4().simple().to_string();
            streams.start_epoch(source, &fresh).await?
        }
    };
    let marked = store.recover_source(source, &epoch).await?;
    match known {
        Some(_) => tracing::warn!(
            source,
            deliveries = marked,
            "the source's Redis keys lost their data; requeueing its pending deliveries"
        ),
        None => tracing::info!(
            source,
            deliveries = marked,
            "first start with queue epochs; checking the source's pending deliveries are queued"
        ),
    }
    epochs.insert(source.to_string(), epoch);
    Ok(())
}

/// Dead-letters the deliveries that can never be made. Returns whether that is done.
async fn bury_unrouted(store: &Store, routes: &Routes) -> bool {
    match store.bury_unrouted(routes).await {
        Ok(rows) => {
            buried(&rows);
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot dead-letter deliveries no longer configured; trying again next tick");
            false
        }
    }
}
