//! Runs long-running operations (bulk replays and redeliveries) in the background of the
//! process that started them. Progress is committed batch by batch under a renewed lease: a
//! runner that dies leaves an operation that the leader's runner resumes from its last batch
//! once the lease runs out, so an operation always ends visibly (succeeded, failed or
//! cancelled).

use crate::replay::Replayer;
use crate::store::operations::Operation;
use crate::store::{Keyset, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// How long a runner may go silent before its operation is taken over.
const LEASE: Duration = Duration::from_secs(30);
/// How often runners look for operations to take over; new ones are started at once.
const POLL: Duration = Duration::from_secs(5);
/// Consecutive failed batches before the operation is marked failed.
const MAX_BATCH_FAILURES: u32 = 5;

pub struct Runner {
    store: Store,
    replayer: Arc<Replayer>,
    /// Woken when an operation is created, so it starts without waiting for the poll.
    pub wake: Notify,
}

impl Runner {
    pub fn new(store: Store, replayer: Arc<Replayer>) -> Self {
        Self {
            store,
            replayer,
            wake: Notify::new(),
        }
    }

    /// Runs the operations this process starts (it is woken for each) and, while `leading`,
    /// those another process's runner left behind when it died.
    pub async fn run(self: Arc<Self>, leading: watch::Receiver<bool>, shutdown: CancellationToken) {
        let mut woken = false;
        // A process shutting down claims nothing more: it would only hold the operation's
        // lease away from a process that can run it.
        while !shutdown.is_cancelled() {
            if woken || *leading.borrow() {
                match self.store.claim_operation(LEASE).await {
                    Ok(Some(operation)) => {
                        self.execute(&operation, &shutdown).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot look for operations"),
                }
            }
            woken = tokio::select! {
                () = self.wake.notified() => true,
                () = tokio::time::sleep(POLL) => false,
                () = shutdown.cancelled() => return,
            };
        }
    }

    /// Whether open dead letters a replay could revive remain in the operation's selection
    /// (those it cannot deliver stay open, counted as failed). On error, assumes none: the
    /// operation then ends as it would have before this check.
    async fn left_behind(&self, operation: &Operation) -> bool {
        // Redeliveries lock nothing another operation could hold: nothing is passed over.
        if operation.kind != "replay" {
            return false;
        }
        match self.replayer.replayable(&operation.selection()).await {
            Ok(open) => open > 0,
            Err(error) => {
                tracing::warn!(%error, operation = %operation.id, "cannot check for dead letters left behind");
                false
            }
        }
    }

    /// Runs the operation's next batch by its kind; `Some(where the next one starts)`, or
    /// `None` once the operation is no longer running.
    async fn batch(
        &self,
        operation: &Operation,
        cursor: Option<Keyset>,
    ) -> Result<Option<Option<Keyset>>, StoreError> {
        Ok(match operation.kind.as_str() {
            "redeliver" => self
                .replayer
                .redeliver_operation_batch(operation, cursor, LEASE)
                .await?
                .map(|batch| batch.next),
            _ => self
                .replayer
                .operation_batch(operation, cursor, LEASE)
                .await?
                .map(|replayed| replayed.batch.next),
        })
    }

    async fn execute(&self, operation: &Operation, shutdown: &CancellationToken) {
        let mut cursor = operation.cursor();
        let mut failures = 0;
        tracing::info!(operation = %operation.id, kind = %operation.kind, resumed = cursor.is_some(), "bulk operation running");
        // On shutdown the lease simply runs out and another process resumes the operation.
        while !shutdown.is_cancelled() {
            let batch = match self.batch(operation, cursor).await {
                Ok(Some(next)) => next,
                Ok(None) => {
                    tracing::info!(operation = %operation.id, "bulk operation cancelled");
                    return;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, operation = %operation.id, failures, "bulk operation batch failed");
                    if failures >= MAX_BATCH_FAILURES {
                        let _ = self
                            .store
                            .finish_operation(operation.id, Some(&error.to_string()))
                            .await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                    continue;
                }
            };
            failures = 0;
            match batch {
                Some(next) => cursor = Some(next),
                None if self.left_behind(operation).await => {
                    // Batches pass over rows another replay or purge held at that moment; if
                    // one of those is still open (that transaction rolled back), walk again.
                    tracing::info!(operation = %operation.id, "dead letters left behind; another pass");
                    cursor = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => {
                    if let Err(error) = self.store.finish_operation(operation.id, None).await {
                        tracing::warn!(%error, operation = %operation.id, "cannot mark the operation finished; it will be resumed");
                    }
                    tracing::info!(operation = %operation.id, "bulk operation done");
                    return;
                }
            }
        }
        // Shutting down between batches: another process may resume at once.
        if let Err(error) = self.store.release_operation(operation.id).await {
            tracing::warn!(%error, operation = %operation.id, "cannot release the operation; it resumes when its lease runs out");
        }
    }
}
