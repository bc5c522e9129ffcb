//! The worker: reads the streams as one consumer of the shared group, delivers each event to
//! its source's destinations, records the outcome in Postgres, and only then finishes the entry.

pub mod backoff;
mod commit;
mod deliver;
mod reclaim;
mod record;
mod trace;

pub use deliver::Deliverer;

use crate::config::{Config, RetryPolicy};
use crate::queue::reader::GroupReader;
use crate::queue::stream::Streams;
use crate::queue::{Entry, QueueError};
use crate::store::Store;
use crate::store::breaker::Breakers;
use crate::store::deliveries::{Attempt, Claimed, ClaimedEvent, Claims, FailureKind, Next};
use crate::store::pipeline::Buried;
use crate::store::routes;
use commit::Committer;
use futures::FutureExt;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// A blocked read returns at least this often, so shutdown is noticed promptly.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Entries taken per read, at most.
const READ_BATCH: usize = 64;

pub struct Worker {
    config: Arc<Config>,
    store: Store,
    streams: Streams,
    deliverer: Deliverer,
    committer: Committer,
    /// This process's consumer name in the group.
    consumer: String,
    /// Bounds the deliveries in flight.
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    /// Cancelled when the shutdown deadline passes: unfinished work is dropped and handed back
    /// (its entries stay pending and its leases run out, so another worker takes it over).
    hand_back: CancellationToken,
}

impl Worker {
    /// A fresh consumer name for this process.
    pub fn consumer_name() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    pub fn spawn(
        config: Arc<Config>,
        store: Store,
        streams: Streams,
        consumer: String,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        let worker = Arc::new(Self {
            consumer,
            permits: Arc::new(Semaphore::new(config.worker.concurrency)),
            deliverer: Deliverer::new(&config, streams.clone()),
            committer: Committer::spawn(store.clone(), streams.clone(), Breakers::new(&config)),
            config,
            store,
            streams,
            tracker: TaskTracker::new(),
            hand_back: CancellationToken::new(),
        });
        tokio::spawn(worker.run(shutdown))
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let reclaimer = tokio::spawn(reclaim::run(self.clone(), shutdown.clone()));
        self.consume(&shutdown).await;

        self.tracker.close();
        let deadline = self.config.worker.shutdown_deadline;
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                deadline = %humantime::format_duration(deadline),
                "deliveries still in flight at the shutdown deadline; handing them back"
            );
            self.hand_back.cancel();
            self.tracker.wait().await;
        }
        let _ = reclaimer.await;
        tracing::info!("worker stopped");
    }

    async fn consume(self: &Arc<Self>, shutdown: &CancellationToken) {
        let mut reader: Option<GroupReader> = None;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let first = tokio::select! {
                permit = self.permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
                () = shutdown.cancelled() => return,
            };
            let mut permits = vec![first];
            while permits.len() < READ_BATCH {
                match self.permits.clone().try_acquire_owned() {
                    Ok(permit) => permits.push(permit),
                    Err(_) => break,
                }
            }
            let result = match reader.as_mut() {
                Some(reader) => reader.read(permits.len(), READ_BLOCK).await,
                None => match self.connect_reader().await {
                    Ok(r) => {
                        reader = Some(r);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(entries) => {
                    backoff = Duration::from_millis(100);
                    // A read returns no more entries than permits; unused permits drop here.
                    self.process(entries, permits).await;
                }
                Err(error) => {
                    if error.is_nogroup() {
                        // Redis lost its data: the leader's scheduler requeues what is owed.
                        tracing::warn!("consumer group missing; recreating it");
                        self.ensure_groups().await;
                    } else {
                        tracing::warn!(%error, backoff = %humantime::format_duration(backoff), "reading the streams failed; reconnecting");
                        reader = None;
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }

    async fn connect_reader(&self) -> Result<GroupReader, QueueError> {
        self.ensure_groups().await;
        let streams = self
            .config
            .sources
            .iter()
            .map(|s| (s.name.clone(), self.streams.events_key(&s.name)));
        GroupReader::connect(&self.config.redis_url, &self.consumer, streams).await
    }

    async fn ensure_groups(&self) {
        for source in &self.config.sources {
            if let Err(error) = self.streams.ensure_group(&source.name).await {
                tracing::warn!(%error, source = %source.name, "cannot create the consumer group");
            }
        }
    }

    /// Claims what `entries` stand for in one statement and starts a delivery task for each
    /// event claimed, with one of `permits`; entries with nothing to do are finished at once.
    /// Any failure before an entry is finished leaves it pending: it is reclaimed after the
    /// visibility timeout and tried again, so nothing is lost, at worst delivered twice. Each
    /// claim counts an attempt, so that ends after `max_attempts` (see `Store::claim`).
    async fn process(self: &Arc<Self>, entries: Vec<Entry>, permits: Vec<OwnedSemaphorePermit>) {
        let ids: Vec<Uuid> = entries.iter().filter_map(|e| e.event).collect();
        let lease = self.config.worker.visibility_timeout;
        let claims = match ids.is_empty() {
            true => Claims::default(),
            false => match self.store.claim(&ids, lease).await {
                Ok(claims) => claims,
                Err(error) => {
                    tracing::warn!(%error, entries = entries.len(), "cannot claim deliveries; the entries will be reclaimed");
                    return;
                }
            },
        };
        buried(&claims.spent);
        let mut claimed: HashMap<Uuid, ClaimedEvent> =
            claims.events.into_iter().map(|e| (e.event_id, e)).collect();
        let mut idle = Vec::new();
        for (entry, permit) in entries.into_iter().zip(permits) {
            match entry.event.and_then(|id| claimed.remove(&id)) {
                Some(event) => self.spawn_delivery(entry, event, permit),
                // Nothing claimed: delivered already, not yet due, or another worker holds it
                // (a duplicate entry in this batch included). Entries without a readable event
                // id (deleted while pending) carry nothing to do either: whatever they stood
                // for is still owed in Postgres, and the scheduler requeues it.
                None => idle.push(entry),
            }
        }
        if let Err(error) = self.streams.finish(&idle).await {
            tracing::warn!(%error, entries = idle.len(), "cannot acknowledge; the entries will be reclaimed");
        }
    }

    fn spawn_delivery(
        self: &Arc<Self>,
        entry: Entry,
        event: ClaimedEvent,
        permit: OwnedSemaphorePermit,
    ) {
        let worker = self.clone();
        self.tracker.spawn(async move {
            // A panic ends this entry's processing only, like any other failure before the
            // entry is finished; its permit is released all the same.
            let source = entry.source.clone();
            let (entry_id, event_id) = (entry.id.clone(), event.event_id);
            let deliver = AssertUnwindSafe(worker.deliver(entry, event)).catch_unwind();
            tokio::select! {
                outcome = deliver => if outcome.is_err() {
                    metrics::counter!("hookgate_worker_panics_total", "source" => source).increment(1);
                    tracing::error!(entry = %entry_id, event = %event_id, "processing the entry panicked; it will be reclaimed");
                },
                () = worker.hand_back.cancelled() => {}
            }
            drop(permit);
        });
    }

    /// Makes every claimed delivery of `event` at once, then has the outcome committed (with
    /// other tasks' outcomes) and the entry finished.
    async fn deliver(&self, entry: Entry, event: ClaimedEvent) {
        let attempts =
            futures::future::join_all(event.deliveries.iter().map(|d| self.attempt(&event, d)))
                .await;
        self.committer.commit(entry, event, attempts).await;
    }

    async fn attempt(&self, event: &ClaimedEvent, claimed: &Claimed) -> Attempt {
        let source = self.config.source(&event.source);
        let destination = source.and_then(|s| s.destination(&claimed.destination));
        let (Some(source), Some(destination)) = (source, destination) else {
            // Configuration changed under the event: retrying cannot help.
            return Attempt {
                destination: claimed.destination.clone(),
                attempt: claimed.attempt,
                duration: Duration::ZERO,
                status_code: None,
                failure: Some((
                    FailureKind::Pipeline,
                    routes::unrouted(&event.source, &claimed.destination),
                )),
                next: Next::DeadLetter,
            };
        };
        let response = self
            .deliverer
            .deliver(&source.name, destination, event, claimed.attempt)
            .await;
        let next = next_step(&source.retry, claimed, &response);
        let labels = [
            ("source", source.name.clone()),
            ("destination", destination.name.clone()),
        ];
        metrics::histogram!("hookgate_delivery_duration_seconds", &labels)
            .record(response.duration.as_secs_f64());
        let outcome = match next {
            Next::Delivered => "delivered",
            Next::RetryIn(_) => {
                metrics::counter!("hookgate_retries_total", &labels).increment(1);
                "retry"
            }
            Next::DeadLetter => {
                metrics::counter!("hookgate_dead_letters_total", &labels).increment(1);
                "dead_lettered"
            }
        };
        metrics::counter!("hookgate_deliveries_total", "source" => source.name.clone(), "destination" => destination.name.clone(), "outcome" => outcome).increment(1);
        if let Some((kind, error)) = &response.failure {
            tracing::info!(event = %event.event_id, trace_id = %trace::trace_id(event.event_id), destination = %destination.name, attempt = claimed.attempt, kind = kind.as_str(), %error, %next, "delivery failed");
        }
        Attempt {
            destination: claimed.destination.clone(),
            attempt: claimed.attempt,
            duration: response.duration,
            status_code: response.status_code,
            failure: response.failure,
            next,
        }
    }
}

/// Counts and logs deliveries dead-lettered as hookgate's own failures.
pub(crate) fn buried(rows: &[Buried]) {
    for b in rows {
        metrics::counter!("hookgate_dead_letters_total", "source" => b.source.clone(), "destination" => b.destination.clone()).increment(1);
        tracing::warn!(event = %b.event_id, source = %b.source, destination = %b.destination, reason = %b.reason, "delivery dead-lettered as a pipeline failure");
    }
}

fn next_step(policy: &RetryPolicy, claimed: &Claimed, response: &deliver::Response) -> Next {
    if response.failure.is_none() {
        return Next::Delivered;
    }
    if claimed.attempt >= claimed.max_attempts {
        return Next::DeadLetter;
    }
    Next::RetryIn(match response.retry_after {
        Some(after) => backoff::honour_retry_after(policy, after),
        None => backoff::delay(policy, claimed.attempt as u32, rand::random()),
    })
}
