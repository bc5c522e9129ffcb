//! One reader of new changes per process, shared by every subscription.

use super::filter::Filter;
use super::subscription::Subscription;
use crate::store::transitions::{Change, Position, Scope};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Batches a subscription may fall behind before it is dropped. Memory is bounded by
    /// this many batches of `page` changes, shared by all subscriptions.
    pub buffer: usize,
    /// Changes read per query.
    pub page: i64,
    /// How often the hub looks for changes, while anyone listens: how late a change may
    /// reach a client, and a cheap query (by the transitions' `(txid, id)` index) otherwise.
    pub poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            buffer: 64,
            page: 200,
            poll: Duration::from_millis(100),
        }
    }
}

/// Changes the hub read, contiguous with the batch before: nothing in scope lies between
/// `after` and the first change.
#[derive(Debug)]
pub(super) struct Batch {
    pub after: Position,
    pub changes: Vec<Change>,
    pub next: Position,
}

pub struct Hub {
    store: Store,
    limits: Limits,
    batches: broadcast::Sender<Arc<Batch>>,
    shutdown: CancellationToken,
}

impl Hub {
    /// Starts the hub's reader; it ends with `shutdown`, and so do the subscriptions.
    pub fn spawn(
        store: Store,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (batches, _) = broadcast::channel(limits.buffer);
        let hub = Arc::new(Self {
            store,
            limits,
            batches,
            shutdown,
        });
        let task = tokio::spawn(read(hub.clone()));
        (hub, task)
    }

    /// Changes matching `filter` after `from`: the ones already final first, read from
    /// Postgres, then the new ones as they commit.
    pub fn subscribe(&self, filter: Filter, from: Position) -> Subscription {
        Subscription::new(
            self.store.clone(),
            filter,
            from,
            self.limits.page,
            self.batches.subscribe(),
            self.shutdown.clone(),
        )
    }

    /// The position after everything final now: where a reader of what happens next starts.
    pub async fn now(&self) -> Result<Position, StoreError> {
        self.store.stream_now().await
    }
}

/// Reads what committed since the last read, while anyone subscribes, and broadcasts it.
async fn read(hub: Arc<Hub>) {
    // The last read position, and the one the last batch sent ended at; `None` while nobody
    // listens, so an idle hub reads nothing.
    let mut read: Option<(Position, Position)> = None;
    loop {
        tokio::select! {
            () = hub.shutdown.cancelled() => return,
            () = tokio::time::sleep(hub.limits.poll) => {}
        }
        if hub.batches.receiver_count() == 0 {
            read = None;
            continue;
        }
        if let Err(error) = read_new(&hub, &mut read).await {
            tracing::warn!(%error, "stream: cannot read new changes");
        }
    }
}

async fn read_new(hub: &Hub, read: &mut Option<(Position, Position)>) -> Result<(), StoreError> {
    let (mut at, mut sent) = match *read {
        Some(positions) => positions,
        None => {
            // Subscriptions that began before this point may have missed what committed in
            // between: an empty batch starting here sends them to Postgres for it.
            let now = hub.store.stream_now().await?;
            let start = Batch {
                after: now,
                changes: Vec::new(),
                next: now,
            };
            let _ = hub.batches.send(Arc::new(start));
            (now, now)
        }
    };
    loop {
        let page = (hub.store)
            .changes_after(at, &Scope::default(), hub.limits.page)
            .await?;
        at = page.next;
        if !page.changes.is_empty() {
            let batch = Batch {
                after: sent,
                changes: page.changes,
                next: page.next,
            };
            // No receiver left is no error: the next read starts afresh.
            let _ = hub.batches.send(Arc::new(batch));
            sent = at;
        }
        *read = Some((at, sent));
        if !page.more {
            return Ok(());
        }
    }
}
