//! One reader's changes: caught up from Postgres, then followed live.

use super::filter::Filter;
use super::hub::Batch;
use crate::store::transitions::{Change, Position};
use crate::store::{Store, StoreError};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

/// Why a subscription ended before its process shut down.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    #[error("dropped: this client fell too far behind; reconnect with Last-Event-ID to resume")]
    FellBehind,
    #[error("the stream cannot read Postgres now; reconnect with Last-Event-ID to resume")]
    Store(#[from] StoreError),
}

pub struct Subscription {
    store: Store,
    filter: Filter,
    /// Every change in scope up to here was handed out or filtered out.
    cursor: Position,
    ready: VecDeque<Change>,
    /// Whether Postgres holds changes past `cursor` that the broadcast will not bring.
    catching_up: bool,
    page: i64,
    batches: broadcast::Receiver<Arc<Batch>>,
    shutdown: CancellationToken,
}

impl Subscription {
    pub(super) fn new(
        store: Store,
        filter: Filter,
        from: Position,
        page: i64,
        batches: broadcast::Receiver<Arc<Batch>>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            filter,
            cursor: from,
            ready: VecDeque::new(),
            catching_up: true,
            page,
            batches,
            shutdown,
        }
    }

    /// The next change; `None` once the process shuts down.
    pub async fn next(&mut self) -> Result<Option<Change>, Ended> {
        loop {
            if let Some(change) = self.ready.pop_front() {
                return Ok(Some(change));
            }
            if self.catching_up {
                self.catch_up().await?;
                continue;
            }
            let batch = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(None),
                batch = self.batches.recv() => batch,
            };
            match batch {
                Ok(batch) => self.take(&batch),
                Err(RecvError::Lagged(_)) => return Err(Ended::FellBehind),
                Err(RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// One page from Postgres; caught up once a page is not full.
    async fn catch_up(&mut self) -> Result<(), Ended> {
        let page = (self.store)
            .changes_after(self.cursor, &self.filter.scope, self.page)
            .await?;
        let filter = &self.filter;
        self.ready
            .extend(page.changes.into_iter().filter(|c| filter.wants(c)));
        self.cursor = page.next;
        self.catching_up = page.more;
        Ok(())
    }

    /// A batch that starts past the cursor means batches were missed (or the hub started
    /// afresh): Postgres has them.
    fn take(&mut self, batch: &Batch) {
        if batch.after > self.cursor {
            self.catching_up = true;
            return;
        }
        let (cursor, filter) = (self.cursor, &self.filter);
        self.ready.extend(
            (batch.changes.iter())
                .filter(|c| c.position > cursor && filter.wants(c))
                .cloned(),
        );
        self.cursor = self.cursor.max(batch.next);
    }
}
