//! Clearing outbox rows once their events are on the stream.
//!
//! Confirmations are batched off the request path: a webhook is answered as soon as its row is
//! committed and its XADD is done. A confirmation that is lost (crash, Postgres away) only means
//! the reconciler enqueues that event once more, which the worker tolerates, so these deletes
//! commit with `synchronous_commit = off`.

use super::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

const BATCH: usize = 1024;
const QUEUE: usize = 64 * 1024;

#[derive(Clone)]
pub struct OutboxConfirmer {
    tx: mpsc::Sender<Uuid>,
}

impl OutboxConfirmer {
    /// Starts the background deleter; it stops once every confirmer clone is dropped and the
    /// queue is drained.
    pub fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, tokio::spawn(run(store, rx)))
    }

    /// Records that `event_id` is on its stream. Never waits: when the queue is full the
    /// confirmation is dropped and the reconciler re-enqueues the event later.
    pub fn confirm(&self, event_id: Uuid) {
        if self.tx.try_send(event_id).is_err() {
            metrics::counter!("hookgate_outbox_confirmations_dropped_total").increment(1);
        }
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Uuid>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(error) = delete(&store, &batch).await {
            tracing::warn!(%error, count = batch.len(), "could not clear outbox rows; the reconciler will re-enqueue them");
        }
        batch.clear();
    }
}

async fn delete(store: &Store, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM enqueue_outbox WHERE event_id = ANY($1)")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
