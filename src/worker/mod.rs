//! The worker: reads the streams as one consumer of the shared group (one reader for every
//! stream on a single Redis, one per source's stream on a cluster), delivers each event to its
//! source's destinations, records the outcome in Postgres, and only then finishes the entry.

pub mod backoff;
mod commit;
mod deliver;
mod reclaim;
mod record;
mod throttle;
mod trace;

pub use deliver::Deliverer;

use crate::config::{Config, RetryPolicy};
use crate::queue::reader::{GroupReader, read_sets};
use crate::queue::stream::Streams;
use crate::queue::{Entry, QueueError};
use crate::store::Store;
use crate::store::deliveries::{Attempt, Claimed, ClaimedEvent, Claims, FailureKind, Next};
use crate::store::pipeline::Buried;
use crate::store::routes;
use crate::store::rules::Rules;
use commit::Committer;
use futures::FutureExt;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use throttle::{Plan, Throttles};
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
    throttles: Throttles,
    /// What claims and outcomes must know of each destination.
    rules: Rules,
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
        let rules = Rules::new(&config);
        let worker = Arc::new(Self {
            consumer,
            permits: Arc::new(Semaphore::new(config.worker.concurrency)),
            deliverer: Deliverer::new(&config, streams.clone()),
            throttles: Throttles::new(&config, streams.clone()),
            committer: Committer::spawn(store.clone(), streams.clone(), rules.clone()),
            rules,
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
        let sources: Vec<String> = self.config.sources.iter().map(|s| s.name.clone()).collect();
        let readers = read_sets(&self.config.redis_url, &sources)
            .into_iter()
            .map(|set| self.consume(set, &shutdown));
        futures::future::join_all(readers).await;

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

    /// Reads `sources`' streams with one reader until shutdown. Several of these share the
    /// permits (on a cluster, one per source): each holds permits only while it takes what is
    /// already there, and none while it waits for new entries, so a reader waiting on a quiet
    /// stream never starves one with a backlog.
    async fn consume(self: &Arc<Self>, sources: Vec<String>, shutdown: &CancellationToken) {
        let mut reader: Option<GroupReader> = None;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let result = match reader.as_mut() {
                Some(reader) => self.take(reader, shutdown).await,
                None => match self.connect_reader(&sources).await {
                    Ok(r) => {
                        reader = Some(r);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(Some((entries, permits))) => {
                    backoff = Duration::from_millis(100);
                    self.process(entries, permits).await;
                }
                Ok(None) => return,
                Err(error) if error.is_nogroup() => {
                    // Redis lost its data: the leader's scheduler requeues what is owed.
                    tracing::warn!("consumer group missing; recreating it");
                    self.ensure_groups(&sources).await;
                }
                Err(error) => {
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

    /// Entries to process, each with a permit; `None` once shutting down. First what is
    /// waiting, as many as there are free permits (at least one, up to [`READ_BATCH`]); if
    /// nothing is, the first new entries within [`READ_BLOCK`], waited for without a permit
    /// and given theirs once read. A read of several streams takes up to its count from each:
    /// entries beyond the permits held wait for more.
    async fn take(
        &self,
        reader: &mut GroupReader,
        shutdown: &CancellationToken,
    ) -> Result<Option<(Vec<Entry>, Vec<OwnedSemaphorePermit>)>, QueueError> {
        let Some(first) = self.permit(shutdown).await else {
            return Ok(None);
        };
        let mut permits = vec![first];
        while permits.len() < READ_BATCH {
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let mut entries = reader.read(permits.len(), None).await?;
        if entries.is_empty() {
            permits.clear();
            entries = reader.read(1, Some(READ_BLOCK)).await?;
        }
        while permits.len() < entries.len() {
            let Some(permit) = self.permit(shutdown).await else {
                return Ok(None);
            };
            permits.push(permit);
        }
        permits.truncate(entries.len());
        Ok(Some((entries, permits)))
    }

    /// A free permit, once there is one; `None` once shutting down.
    async fn permit(&self, shutdown: &CancellationToken) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            permit = self.permits.clone().acquire_owned() => Some(permit.expect("semaphore is never closed")),
            () = shutdown.cancelled() => None,
        }
    }

    async fn connect_reader(&self, sources: &[String]) -> Result<GroupReader, QueueError> {
        self.ensure_groups(sources).await;
        let streams = sources
            .iter()
            .map(|s| (s.clone(), self.streams.events_key(s)));
        GroupReader::connect(&self.config.redis_url, &self.consumer, streams).await
    }

    async fn ensure_groups(&self, sources: &[String]) {
        for source in sources {
            if let Err(error) = self.streams.ensure_group(source).await {
                tracing::warn!(%error, source, "cannot create the consumer group");
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
            false => match self.store.claim(&ids, lease, &self.rules.ordered).await {
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
            // The permit is released with the task's future, whether it ends or is dropped.
            let deliver = AssertUnwindSafe(worker.deliver(entry, event, permit)).catch_unwind();
            tokio::select! {
                outcome = deliver => if outcome.is_err() {
                    metrics::counter!("hookgate_worker_panics_total", "source" => source).increment(1);
                    tracing::error!(entry = %entry_id, event = %event_id, "processing the entry panicked; it will be reclaimed");
                },
                () = worker.hand_back.cancelled() => {}
            }
        });
    }

    /// Makes every claimed delivery of `event` at once, then has the outcome committed (with
    /// other tasks' outcomes) and the entry finished.
    async fn deliver(&self, entry: Entry, event: ClaimedEvent, permit: OwnedSemaphorePermit) {
        let plans =
            futures::future::join_all(event.deliveries.iter().map(|d| self.plan(&event, d))).await;
        // An event waiting for a rate slot gives its place among the worker's deliveries to
        // others meanwhile: what waits so is bounded by each rate times the throttle's lead.
        let permit = (!plans.iter().any(Plan::waits)).then_some(permit);
        let attempts =
            (event.deliveries.iter().zip(plans)).map(|(d, p)| self.attempt(&event, d, p));
        let attempts = futures::future::join_all(attempts).await;
        self.committer.commit(entry, event, attempts).await;
        drop(permit);
    }

    async fn plan(&self, event: &ClaimedEvent, claimed: &Claimed) -> Plan {
        match self.config.source(&event.source) {
            Some(source) => match source.destination(&claimed.destination) {
                Some(destination) => {
                    (self.throttles)
                        .plan(&source.name, destination, claimed)
                        .await
                }
                None => Plan::Go {
                    wait: Duration::ZERO,
                },
            },
            None => Plan::Go {
                wait: Duration::ZERO,
            },
        }
    }

    async fn attempt(&self, event: &ClaimedEvent, claimed: &Claimed, plan: Plan) -> Attempt {
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
        let wait = match plan {
            Plan::Go { wait } => wait,
            deferred => return throttled(claimed, &deferred),
        };
        tokio::time::sleep(wait).await;
        let flight = match (self.throttles)
            .take_off(&source.name, &destination.name, event)
            .await
        {
            Ok(flight) => flight,
            Err(deferred) => return throttled(claimed, &deferred),
        };
        let response = self
            .deliverer
            .deliver(&source.name, destination, event, claimed.attempt)
            .await;
        if let Some(flight) = flight {
            (self.throttles)
                .land(&source.name, &destination.name, flight)
                .await;
        }
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
            Next::Throttled { .. } => unreachable!("an attempt made is never throttled"),
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

/// The outcome of a delivery its throttle deferred: no attempt made.
fn throttled(claimed: &Claimed, plan: &Plan) -> Attempt {
    Attempt {
        destination: claimed.destination.clone(),
        attempt: claimed.attempt,
        duration: Duration::ZERO,
        status_code: None,
        failure: None,
        next: plan.next().expect("a deferring plan"),
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
