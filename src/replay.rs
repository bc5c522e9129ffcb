//! Replaying dead letters and redelivering events: their deliveries get a fresh attempt budget
//! in Postgres, then their events go back on the streams. Shared by the CLI, the admin API and
//! bulk operations.

use crate::config::Config;
use crate::queue::stream::Streams;
use crate::store::Keyset;
use crate::store::admin_actions::Actor;
use crate::store::dead_letters::{Cursor, DeadLetterFilter, ReplayBatch};
use crate::store::operations::Operation;
use crate::store::redeliver::{RedeliverBatch, RedeliverError, Redelivered};
use crate::store::routes::Routes;
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Replayer {
    store: Store,
    streams: Streams,
    /// Where a replayed delivery can go, and the fresh budget it gets: a dead letter whose
    /// source or destination is no longer configured is not replayed.
    routes: Routes,
    /// The last Redis error and when it happened. For a while after one, enqueueing is left
    /// to the scheduler (which enqueues every due pending delivery anyway) instead of waiting
    /// on Redis batch after batch; then Redis is tried again.
    queue_error: Mutex<Option<(String, Instant)>>,
}

/// How long after a Redis error replays stop trying to enqueue.
const QUEUE_BACKOFF: Duration = Duration::from_secs(2);

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub batch: ReplayBatch,
    /// Revived events not put on a stream now (Redis failed); the scheduler will.
    pub not_enqueued: usize,
}

impl Replayer {
    pub fn new(config: &Config, store: Store, streams: Streams) -> Self {
        Self {
            store,
            streams,
            routes: Routes::new(config),
            queue_error: Mutex::default(),
        }
    }

    /// Replays those of `ids` (at most one batch) still open, as `actor`.
    pub async fn ids(&self, ids: &[Uuid], actor: &Actor) -> Result<Replayed, StoreError> {
        let batch = self
            .store
            .replay_dead_letters(ids, &self.routes, actor)
            .await?;
        Ok(self.enqueue(batch).await)
    }

    /// Replays the next batch of open dead letters matching `filter` after `after`, as `actor`.
    pub async fn matching(
        &self,
        filter: &DeadLetterFilter,
        after: Option<Cursor>,
        actor: &Actor,
    ) -> Result<Replayed, StoreError> {
        let batch = self
            .store
            .replay_dead_letters_matching(filter, after, &self.routes, actor)
            .await?;
        Ok(self.enqueue(batch).await)
    }

    /// Replays the next batch of a bulk operation, recording its progress; `None` once the
    /// operation is no longer running (cancelled).
    pub async fn operation_batch(
        &self,
        operation: &Operation,
        after: Option<Cursor>,
        lease: Duration,
    ) -> Result<Option<Replayed>, StoreError> {
        let batch = self
            .store
            .replay_operation_batch(operation, after, &self.routes, lease)
            .await?;
        Ok(match batch {
            Some(batch) => Some(self.enqueue(batch).await),
            None => None,
        })
    }

    /// Sends `event` again to `destinations` (all of its destinations when `None`), as
    /// `actor`. The second value is false when Redis failed: the scheduler enqueues the event
    /// shortly.
    pub async fn redeliver(
        &self,
        event: Uuid,
        destinations: Option<&[String]>,
        actor: &Actor,
    ) -> Result<(Redelivered, bool), RedeliverError> {
        let redelivered = self
            .store
            .redeliver(event, destinations, &self.routes, actor)
            .await?;
        if redelivered.destinations.is_empty() {
            return Ok((redelivered, true));
        }
        let events = HashMap::from([(redelivered.source.clone(), vec![event])]);
        let not_enqueued = self.enqueue_events(&events).await;
        Ok((redelivered, not_enqueued == 0))
    }

    /// Redelivers the next batch of events of a bulk redelivery, recording its progress;
    /// `None` once the operation is no longer running (cancelled).
    pub async fn redeliver_operation_batch(
        &self,
        operation: &Operation,
        after: Option<Keyset>,
        lease: Duration,
    ) -> Result<Option<RedeliverBatch>, StoreError> {
        let batch = self
            .store
            .redeliver_operation_batch(operation, after, &self.routes, lease)
            .await?;
        if let Some(batch) = &batch {
            self.enqueue_events(&batch.events_by_source).await;
        }
        Ok(batch)
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// How many open dead letters `filter` matches that a replay would revive.
    pub async fn replayable(&self, filter: &DeadLetterFilter) -> Result<i64, StoreError> {
        self.store.count_replayable(filter, &self.routes).await
    }

    /// The last Redis error, if any.
    pub fn queue_error(&self) -> Option<String> {
        let last = self.queue_error.lock().expect("not poisoned");
        last.as_ref().map(|(error, _)| error.clone())
    }

    fn backing_off(&self) -> bool {
        let last = self.queue_error.lock().expect("not poisoned");
        last.as_ref()
            .is_some_and(|(_, at)| at.elapsed() < QUEUE_BACKOFF)
    }

    async fn enqueue(&self, batch: ReplayBatch) -> Replayed {
        let not_enqueued = self.enqueue_events(&batch.events_by_source).await;
        Replayed {
            batch,
            not_enqueued,
        }
    }

    /// Puts revived events on their sources' streams; returns how many were not (Redis failed).
    async fn enqueue_events(&self, events_by_source: &HashMap<String, Vec<Uuid>>) -> usize {
        let mut not_enqueued = 0;
        for (source, events) in events_by_source {
            if self.backing_off() {
                not_enqueued += events.len();
                continue;
            }
            if let Err(error) = self.streams.enqueue_many(source, events).await {
                tracing::warn!(%error, "replayed events not enqueued; the scheduler will enqueue them");
                not_enqueued += events.len();
                *self.queue_error.lock().expect("not poisoned") =
                    Some((error.to_string(), Instant::now()));
            }
        }
        not_enqueued
    }
}
