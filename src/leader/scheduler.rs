//! Puts owed work on the streams: retries whose backoff is over, deliveries whose worker died
//! with their lease, events whose enqueue failed, and everything a Redis that lost its data
//! forgot. Postgres knows what is owed: each pending delivery's `requeue_at` says when the
//! scheduler must next look at it (migration 0008 says who sets it), so a tick reads only the
//! rows whose time has come, however many deliveries wait on the streams.
//!
//! Deliveries that wait for a paused destination, or one whose breaker is open, are the
//! scheduler's too: each tick puts back a page of them per destination that delivers again.
//!
//! What can never be delivered is not put back: deliveries whose source or destination left
//! the configuration are dead-lettered when the scheduler starts, rather than re-queued to a
//! stream no worker reads, and again whenever a due one shows up (a worker still running an
//! older configuration scheduled it).

use super::recovery::Epochs;
use crate::queue::QueueError;
use crate::queue::stream::Streams;
use crate::store::requeue::Requeue;
use crate::store::routes::Routes;
use crate::store::{Store, StoreError};
use crate::worker::buried;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PAGE: i64 = 1000;
/// Pages per tick and kind: a longer backlog is worked through over the following ticks.
const MAX_PAGES: usize = 20;
/// How long past their time entries added at ingest wait to be checked for while the group has
/// not read every stream: an XADD that failed then is made up for at worst this late.
const CHECK_PATIENCE: Duration = Duration::from_secs(300);

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
    ordered: Vec<String>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Deliveries whose route is gone are looked for when a route went since the last leader
    // ran, and whenever a due one shows up.
    let mut sweep = Some(Sweep::IfRoutesRemoved);
    let mut epochs = Epochs::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Some(kind) = sweep {
            sweep = (!bury_unrouted(&store, &routes, kind).await).then_some(kind);
        }
        for source in &sources {
            if let Err(error) = epochs.tick(&store, &streams, source).await {
                tracing::warn!(%error, source, "cannot check the source's Redis epoch; retrying next tick");
            }
        }
        release_waiting(&store, &ordered).await;
        if let Err(error) = store.release_ordered(&ordered).await {
            tracing::warn!(%error, "cannot put back the next delivery of ordered destinations; retrying next tick");
        }
        // Entries added at ingest (or by a replay) are checked for at their time only once
        // the group has read every stream: before that, they are most likely still waiting
        // there, and checking each would cost a backlog one update per event.
        let read_through = read_through(&streams, &sources).await;
        let patience = if read_through {
            Duration::ZERO
        } else {
            CHECK_PATIENCE
        };
        for (check, patience) in [(false, Duration::ZERO), (true, patience)] {
            for _ in 0..MAX_PAGES {
                match requeue_page(&store, &streams, &routes, check, patience).await {
                    Ok(page) => {
                        if page.unrouted {
                            sweep = Some(Sweep::Now);
                        }
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
}

/// Whether hookgate's group has read every source's stream; `false` when Redis cannot say.
async fn read_through(streams: &Streams, sources: &[String]) -> bool {
    for source in sources {
        match streams.read_through(source).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(error) => {
                tracing::debug!(%error, source, "cannot tell how far the group has read");
                return false;
            }
        }
    }
    true
}

/// Makes what waited for a destination that delivers again due, for the requeue pages: as
/// many pages as those can take in a tick.
async fn release_waiting(store: &Store, ordered: &[String]) {
    for _ in 0..MAX_PAGES {
        match store.release_waiting(PAGE, ordered).await {
            Ok(released) if released >= PAGE as u64 => {}
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot put back deliveries that waited for their destination; retrying next tick");
                return;
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
    check: bool,
    patience: Duration,
) -> Result<Page, TickError> {
    let rows = store.due_requeues(check, patience, PAGE).await?;
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

/// When to sweep for deliveries whose route is gone.
#[derive(Debug, Clone, Copy)]
enum Sweep {
    IfRoutesRemoved,
    Now,
}

/// Dead-letters the deliveries that can never be made. Returns whether that is done.
async fn bury_unrouted(store: &Store, routes: &Routes, sweep: Sweep) -> bool {
    let swept = async {
        let rows = match sweep {
            Sweep::IfRoutesRemoved if !store.routes_removed(routes).await? => Vec::new(),
            _ => store.bury_unrouted(routes).await?,
        };
        // Routes added count too: one of them removed later must be noticed.
        store.record_routes(routes).await?;
        Ok::<_, StoreError>(rows)
    };
    match swept.await {
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
