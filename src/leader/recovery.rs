//! Noticing that a source's Redis keys lost their data, and putting back what they held.
//!
//! Each source's keys carry an epoch (see [`crate::queue::epoch`]) that Postgres records too.
//! When Redis has none, or another, its data is gone: the walk goes through the source's
//! pending deliveries that Postgres believes are on the stream (those with a requeue time are
//! the scheduler's anyway), a page at a time, and adds an entry for each event the source's
//! `queued` set does not know. Only then is the epoch recorded, so a leader that dies midway
//! leaves the walk to its successor, who starts it again.

use crate::queue::QueueError;
use crate::queue::stream::Streams;
use crate::store::{Store, StoreError};
use std::collections::HashMap;
use uuid::Uuid;

/// Events looked at per page, and pages per source and tick: a backlog of a million is walked
/// in under a minute, and a tick stays short.
const PAGE: i64 = 1000;
const PAGES_PER_TICK: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What the scheduler knows of each source's epoch.
#[derive(Default)]
pub struct Epochs {
    /// The epoch recorded, once read or recorded.
    known: HashMap<String, String>,
    /// Walks under way.
    walks: HashMap<String, Walk>,
}

/// A recovery in progress.
struct Walk {
    /// The epoch Redis carries now, recorded when the walk ends.
    epoch: String,
    /// The last event looked at.
    after: Uuid,
    requeued: u64,
}

impl Epochs {
    /// Checks `source`'s epoch, and takes a recovery under way a few pages further.
    pub async fn tick(
        &mut self,
        store: &Store,
        streams: &Streams,
        source: &str,
    ) -> Result<(), RecoveryError> {
        if !self.walks.contains_key(source) && !self.lost(store, streams, source).await? {
            return Ok(());
        }
        let walk = self.walks.get_mut(source).expect("a walk under way");
        for _ in 0..PAGES_PER_TICK {
            let events = store.queued_events(source, walk.after, PAGE).await?;
            let missing = streams.unqueued(source, &events).await?;
            streams.enqueue_many(source, &missing).await?;
            walk.requeued += missing.len() as u64;
            match events.last() {
                Some(last) if events.len() as i64 == PAGE => walk.after = *last,
                _ => {
                    store.record_epoch(source, &walk.epoch).await?;
                    tracing::info!(
                        source,
                        requeued = walk.requeued,
                        "the source's queue is whole again"
                    );
                    let walk = self.walks.remove(source).expect("a walk under way");
                    self.known.insert(source.to_string(), walk.epoch);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Whether `source`'s keys lost their data since the epoch recorded; if so, a walk starts.
    async fn lost(
        &mut self,
        store: &Store,
        streams: &Streams,
        source: &str,
    ) -> Result<bool, RecoveryError> {
        let known = match self.known.get(source) {
            Some(epoch) => Some(epoch.clone()),
            None => store.stream_epoch(source).await?,
        };
        let current = streams.epoch(source).await?;
        if let (Some(current), Some(known)) = (&current, &known)
            && current == known
        {
            self.known.insert(source.to_string(), known.clone());
            return Ok(false);
        }
        // The epoch goes into Redis first: should Redis lose it again before the walk ends,
        // the next check starts another.
        let epoch = match current {
            Some(epoch) => epoch,
            None => {
                let fresh = Uuid::new_v4().simple().to_string();
                streams.start_epoch(source, &fresh).await?
            }
        };
        match known {
            Some(_) => tracing::warn!(
                source,
                "the source's Redis keys lost their data; requeueing what they held"
            ),
            None => tracing::info!(
                source,
                "first start with a queue epoch; checking that every pending delivery is queued"
            ),
        }
        self.known.remove(source);
        let walk = Walk {
            epoch,
            after: Uuid::nil(),
            requeued: 0,
        };
        self.walks.insert(source.to_string(), walk);
        Ok(true)
    }
}
