//! Commits outcomes in batches. A delivery task hands its claim's attempts over and waits;
//! what arrives while one batch commits goes into the next, so under load many outcomes share
//! one transaction and their entries one Redis round trip, and alone an outcome waits for
//! nobody. The outcome is committed before its entry is finished, as always.

use super::record;
use crate::queue::Entry;
use crate::queue::stream::Streams;
use crate::store::Store;
use crate::store::deliveries::{Attempt, ClaimedEvent};
use crate::store::outcomes::Outcome;
use crate::store::rules::Rules;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Outcomes per transaction, at most.
const MAX_BATCH: usize = 256;

/// One claim's outcome, waiting to be committed.
struct Pending {
    entry: Entry,
    event: ClaimedEvent,
    attempts: Vec<Attempt>,
    done: oneshot::Sender<()>,
}

pub struct Committer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Committer {
    /// Starts the committing task; it ends once the committer is dropped.
    pub fn spawn(store: Store, streams: Streams, rules: Rules) -> Self {
        // Unbounded, yet bounded by the worker's permits: each pending outcome holds one.
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, streams, rules, rx));
        Self { queue }
    }

    /// Records the outcome and finishes the entry, or leaves the entry pending to be
    /// reclaimed when the outcome cannot be recorded; returns once that is done.
    pub async fn commit(&self, entry: Entry, event: ClaimedEvent, attempts: Vec<Attempt>) {
        let (done, committed) = oneshot::channel();
        let pending = Pending {
            entry,
            event,
            attempts,
            done,
        };
        if self.queue.send(pending).is_ok() {
            let _ = committed.await;
        }
    }
}

async fn run(
    store: Store,
    streams: Streams,
    rules: Rules,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        commit(&store, &streams, &rules, batch).await;
    }
}

async fn commit(store: &Store, streams: &Streams, rules: &Rules, batch: Vec<Pending>) {
    let outcomes: Vec<Outcome> = (batch.iter())
        .map(|p| Outcome {
            event: &p.event,
            attempts: &p.attempts,
        })
        .collect();
    let mut released = Vec::new();
    let settled = match store.record(&outcomes, rules).await {
        Ok(next) => {
            released = next;
            vec![true; batch.len()]
        }
        // One outcome Postgres refuses must not hold the others back: each is then recorded
        // on its own, with the retries and fallbacks of `record::settle`.
        Err(error) => {
            tracing::debug!(%error, outcomes = batch.len(), "recording a batch of outcomes failed; recording each on its own");
            let each = batch
                .iter()
                .map(|p| record::settle(store, rules, &p.event, &p.attempts));
            futures::future::join_all(each).await
        }
    };
    let finished: Vec<Entry> = (batch.iter().zip(&settled))
        .filter(|(_, settled)| **settled)
        .map(|(p, _)| p.entry.clone())
        .collect();
    if let Err(error) = streams.finish(&finished).await {
        tracing::warn!(%error, entries = finished.len(), "cannot acknowledge; the entries will be reclaimed");
    }
    enqueue_released(streams, released).await;
    for pending in batch {
        let _ = pending.done.send(());
    }
}

/// Puts the next deliveries of ordered destinations on their streams. One that fails to is
/// checked for by the scheduler after the grace it was given (see `store::ordered`).
async fn enqueue_released(streams: &Streams, released: Vec<(String, Uuid)>) {
    let mut by_source: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for (source, event) in released {
        by_source.entry(source).or_default().push(event);
    }
    for (source, events) in by_source {
        if let Err(error) = streams.enqueue_many(&source, &events).await {
            tracing::warn!(%error, source, "cannot enqueue the next delivery of an ordered destination; the scheduler will");
        }
    }
}
