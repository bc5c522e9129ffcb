//! Retention, so a gateway that runs for a year does not fill its disk: every
//! `retention_interval` a pass deletes the dead letters older than `dead_letter_retention`,
//! then the settled events older than their source's `retention`, with their deliveries,
//! attempts and audit rows (`crate::store::retention` says what is kept and why). The leader
//! runs the passes; a lock keeps a pass started elsewhere (`hookgate retention run`) from
//! running beside one.

use crate::config::Config;
use crate::store::retention::{Deleted, Sweeper};
use crate::store::{Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long each kind of row is kept.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Events of sources without their own retention, configured or not.
    events: TimeDelta,
    by_source: HashMap<String, TimeDelta>,
    dead_letters: TimeDelta,
}

impl Policy {
    pub fn new(config: &Config) -> Self {
        // The configuration accepts at most a hundred years.
        let delta = |d: Duration| TimeDelta::from_std(d).expect("a validated retention");
        Self {
            events: delta(config.retention.events),
            by_source: (config.sources.iter())
                .filter_map(|s| Some((s.name.clone(), delta(s.retention?))))
                .collect(),
            dead_letters: delta(config.retention.dead_letters),
        }
    }

    fn events(&self, source: &str) -> TimeDelta {
        self.by_source.get(source).copied().unwrap_or(self.events)
    }
}

/// Runs a pass every `interval` until `shutdown`, which also ends a pass between batches.
pub async fn run(store: Store, policy: Policy, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match pass(&store, &policy, &shutdown).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("another process is running a retention pass; skipped"),
            Err(error) => tracing::warn!(%error, "retention pass failed; retrying next interval"),
        }
    }
}

/// Runs one pass now, unless another process is running one (`None`). Each batch is counted in
/// `hookgate_retention_deleted_total{table}` as it commits.
pub async fn pass(
    store: &Store,
    policy: &Policy,
    stop: &CancellationToken,
) -> Result<Option<Deleted>, StoreError> {
    let Some(mut sweeper) = store.retention_sweeper().await? else {
        return Ok(None);
    };
    let deleted = sweep(&mut sweeper, policy, stop, |batch| {
        for (table, n) in batch.by_table() {
            metrics::counter!("hookgate_retention_deleted_total", "table" => table.name())
                .increment(n);
        }
    })
    .await?;
    sweeper.release().await?;
    tracing::info!(
        events = deleted.events,
        deliveries = deleted.deliveries,
        delivery_attempts = deleted.delivery_attempts,
        event_transitions = deleted.event_transitions,
        dead_letters = deleted.dead_letters,
        stopped_early = stop.is_cancelled(),
        "retention pass"
    );
    Ok(Some(deleted))
}

/// What a pass would delete now; deletes and locks nothing.
pub async fn dry_run(store: &Store, policy: &Policy) -> Result<Deleted, StoreError> {
    let mut sweeper = store.retention_dry_run().await?;
    sweep(&mut sweeper, policy, &CancellationToken::new(), |_| {}).await
}

/// Dead letters first: an event whose last dead letter expires goes in the same pass.
async fn sweep(
    sweeper: &mut Sweeper,
    policy: &Policy,
    stop: &CancellationToken,
    committed: impl Fn(&Deleted),
) -> Result<Deleted, StoreError> {
    let now = sweeper.now().await?;
    let cutoffs = Cutoffs {
        dead_letters: now - policy.dead_letters,
        events: None,
    };
    let mut total = walk(sweeper, cutoffs, stop, &committed).await?;
    for source in sweeper.sources().await? {
        let events = Some((source.as_str(), now - policy.events(&source)));
        total += walk(sweeper, Cutoffs { events, ..cutoffs }, stop, &committed).await?;
    }
    Ok(total)
}

/// What a walk deletes: dead letters created before `dead_letters`, or, with `events`, that
/// source's events received before its time.
#[derive(Clone, Copy)]
struct Cutoffs<'a> {
    dead_letters: DateTime<Utc>,
    events: Option<(&'a str, DateTime<Utc>)>,
}

/// Takes batches until the last one, or until `stop`.
async fn walk(
    sweeper: &mut Sweeper,
    cutoffs: Cutoffs<'_>,
    stop: &CancellationToken,
    committed: &impl Fn(&Deleted),
) -> Result<Deleted, StoreError> {
    let mut total = Deleted::default();
    let mut after = None;
    while !stop.is_cancelled() {
        let batch = match cutoffs.events {
            None => sweeper.dead_letters(cutoffs.dead_letters, after).await?,
            Some((source, cutoff)) => {
                (sweeper.events(source, cutoff, cutoffs.dead_letters, after)).await?
            }
        };
        committed(&batch.deleted);
        total += batch.deleted;
        match batch.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(total)
}
