//! Commits outcomes in batches. A delivery task hands its claim's attempts over and waits;
//! what arrives while one batch commits goes into the next, so under load many outcomes share
//! one transaction and their entries one Redis round trip, and alone an outcome waits for
//! nobody. The outcome is committed before its entry is finished, as always.

use super::record;
use crate::queue::Entry;
use crate::queue::stream::Streams;
use crate::store::Store;
use crate::store::breaker::Breakers;
use crate::store::deliveries::{Attempt, ClaimedEvent};
use crate::store::outcomes::Outcome;
use tokio::sync::{mpsc, oneshot};

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
    pub fn spawn(store: Store, streams: Streams, breakers: Breakers) -> Self {
        // Unbounded, yet bounded by the worker's permits: each pending outcome holds one.
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, streams, breakers, rx));
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
    breakers: Breakers,
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
        commit(&store, &streams, &breakers, batch).await;
    }
}

async fn commit(store: &Store, streams: &Streams, breakers: &Breakers, batch: Vec<Pending>) {
    let outcomes: Vec<Outcome> = (batch.iter())
        .map(|p| Outcome {
            event: &p.event,
            attempts: &p.attempts,
        })
        .collect();
    let settled = match store.record(&outcomes, breakers).await {
        Ok(_) => vec![true; batch.len()],
        // One outcome Postgres refuses must not hold the others back: each is then recorded
        // on its own, with the retries and fallbacks of `record::settle`.
        Err(error) => {
            tracing::debug!(%error, outcomes = batch.len(), "recording a batch of outcomes failed; recording each on its own");
            let each = batch
                .iter()
                .map(|p| record::settle(store, breakers, &p.event, &p.attempts));
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
    for pending in batch {
        let _ = pending.done.send(());
    }
}
