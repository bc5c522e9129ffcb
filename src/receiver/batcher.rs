//! Micro-batching of ingest: concurrent webhooks share one multi-row insert and one pipelined
//! XADD. Each request is still answered only after its own row is committed (and its XADD
//! tried), so every guarantee of the single-row path holds; what changes is that a busy
//! receiver pays one Postgres round trip and one commit per batch instead of per webhook.
//!
//! There is no timer: a flusher takes whatever has queued up while the previous batches were
//! in flight. An idle receiver therefore flushes each webhook at once (no added latency), and
//! a loaded one forms batches as large as the load.

use super::budget::Reservation;
use crate::queue::stream::Streams;
use crate::store::events::{Inserted, NewEvent};
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

/// Batches in flight at once: enough to keep Postgres busy while a batch fills, few enough
/// that batches do fill under load.
const FLUSHERS: usize = 4;
/// Webhooks per insert, at most.
const MAX_BATCH: usize = 128;
/// Payload bytes per insert, at most (a batch always takes at least one webhook).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Beyond this the provider gets 503 and retries; the insert may still commit, in which case
/// the retry is answered "duplicate" and nothing is lost or doubled.
const INSERT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a webhook could not be stored: the provider gets 503 and retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("postgres did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the receiver is shutting down")]
    Closed,
    #[error("{0} webhooks are already waiting to be stored")]
    Overloaded(usize),
}

impl From<StoreError> for Unavailable {
    fn from(error: StoreError) -> Self {
        Self::Store(Arc::new(error))
    }
}

type Outcome = Result<Inserted, Unavailable>;

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Outcome>,
    /// The body's share of `edge.ingest_memory`, given back once the batch is stored, even
    /// when the requester stopped waiting.
    memory: Reservation,
}

#[derive(Clone)]
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the flushers, with room for `queue` waiting webhooks (`edge.ingest_queue`);
    /// they stop once every clone of the batcher is dropped and the queue is drained.
    pub fn spawn(store: Store, streams: Streams, queue: usize) -> Self {
        let (jobs, waiting) = mpsc::channel(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..FLUSHERS {
            tokio::spawn(flush_loop(waiting.clone(), store.clone(), streams.clone()));
        }
        Self { jobs }
    }

    /// Stores `event` (and, when new, enqueues it); answers once its batch is committed. A
    /// full queue is refused at once: the provider retries later, rather than holding a
    /// connection for seconds on a receiver that is already behind.
    pub async fn ingest(&self, event: NewEvent, memory: Reservation) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job {
                event,
                reply,
                memory,
            })
            .map_err(|error| match error {
                TrySendError::Full(_) => Unavailable::Overloaded(self.jobs.max_capacity()),
                TrySendError::Closed(_) => Unavailable::Closed,
            })?;
        tokio::time::timeout(INSERT_TIMEOUT, answer)
            .await
            .map_err(|_| Unavailable::Timeout(INSERT_TIMEOUT))?
            .map_err(|_| Unavailable::Closed)?
    }
}

async fn flush_loop(queue: Arc<Mutex<mpsc::Receiver<Job>>>, store: Store, streams: Streams) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut bytes = first.event.payload.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match queue.try_recv() {
                    Ok(job) => {
                        bytes += job.event.payload.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        flush(&store, &streams, batch).await;
    }
}

async fn flush(store: &Store, streams: &Streams, batch: Vec<Job>) {
    metrics::histogram!("hookgate_ingest_batch_size").record(batch.len() as f64);
    let (events, replies): (Vec<NewEvent>, Vec<_>) = batch
        .into_iter()
        .map(|j| (j.event, (j.reply, j.memory)))
        .unzip();
    let results = insert(store, &events).await;
    enqueue_new(streams, &events, &results).await;
    // The bodies are freed before their bytes go back to the budget.
    drop(events);
    for ((reply, _memory), result) in replies.into_iter().zip(results) {
        // A requester that gave up (timeout, disconnect) is answered "duplicate" on its retry.
        let _ = reply.send(result);
    }
}

/// One result per event. A refused batch is refused for all its webhooks: inputs are
/// validated before they get here (an event id with NUL is a 400), so what Postgres refuses
/// is the database's trouble, and every provider is told to retry.
async fn insert(store: &Store, events: &[NewEvent]) -> Vec<Outcome> {
    let attempt = tokio::time::timeout(INSERT_TIMEOUT, store.insert_events(events)).await;
    match attempt {
        Ok(Ok(inserted)) => inserted.into_iter().map(Ok).collect(),
        Ok(Err(error)) => {
            let error = Unavailable::from(error);
            events.iter().map(|_| Err(error.clone())).collect()
        }
        Err(_) => events
            .iter()
            .map(|_| Err(Unavailable::Timeout(INSERT_TIMEOUT)))
            .collect(),
    }
}

/// XADDs the new events, one atomic pipeline per source. A failure is logged and counted:
/// the events are committed, the webhooks are still answered 200, and the scheduler
/// enqueues them later.
async fn enqueue_new(streams: &Streams, events: &[NewEvent], results: &[Outcome]) {
    let mut by_source: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for (event, result) in events.iter().zip(results) {
        if let Ok(Inserted::New(id)) = result {
            by_source.entry(&event.source).or_default().push(*id);
        }
    }
    for (source, ids) in by_source {
        if let Err(error) = streams.enqueue_many(source, &ids).await {
            metrics::counter!("hookgate_enqueue_failures_total", "source" => source.to_string())
                .increment(ids.len() as u64);
            tracing::warn!(%error, source, events = ids.len(), "XADD failed; the scheduler will enqueue the events");
        }
    }
}
