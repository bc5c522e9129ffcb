//! One worker process at a time leads the background work: the scheduler, the depth gauges
//! and alerts, retention, Redis upkeep and the pick-up of abandoned operations. It is elected
//! through a Postgres advisory lock (see [`crate::store::leader`]); the other worker
//! processes stand by and try for it every [`CAMPAIGN`], so a leader that dies is replaced
//! within seconds. Every duty stays safe should two leaders overlap for a moment (a leader
//! cut off from Postgres notices only at its next confirmation).

mod alerts;
mod gauges;
mod recovery;
mod scheduler;
mod upkeep;

use crate::config::Config;
use crate::queue::stream::Streams;
use crate::store::Store;
use crate::store::leader::Session;
use crate::store::routes::Routes;
use crate::store::rules::Rules;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a standby tries for the lock, and a leader confirms it still holds it.
const CAMPAIGN: Duration = Duration::from_secs(1);
/// A leader whose lock's session does not answer within this steps down.
const CONFIRM_WITHIN: Duration = Duration::from_secs(3);

/// What a leader needs for its duties.
pub struct Duties {
    pub config: Arc<Config>,
    pub store: Store,
    pub streams: Streams,
    /// This process's consumer name in the group, never removed as idle.
    pub consumer: String,
}

/// Campaigns until `shutdown`. The receiver says whether this process leads now.
pub fn spawn(
    duties: Duties,
    shutdown: CancellationToken,
) -> (JoinHandle<()>, watch::Receiver<bool>) {
    let (leading, watch) = watch::channel(false);
    let task = tokio::spawn(campaign(Arc::new(duties), leading, shutdown));
    (task, watch)
}

async fn campaign(duties: Arc<Duties>, leading: watch::Sender<bool>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CAMPAIGN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    metrics::gauge!("hookgate_leader").set(0.0);
    // Kept between tries: a standby asks on the same session every second.
    let mut standing: Option<Session> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let mut session = match standing.take() {
            Some(session) => session,
            None => match duties.store.leader_session().await {
                Ok(session) => session,
                Err(error) => {
                    tracing::debug!(%error, "cannot campaign for leadership");
                    continue;
                }
            },
        };
        match session.try_lead().await {
            Ok(true) => {}
            Ok(false) => {
                standing = Some(session);
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "cannot campaign for leadership");
                continue;
            }
        }
        tracing::info!("leading the background work");
        metrics::gauge!("hookgate_leader").set(1.0);
        leading.send_replace(true);
        let term = shutdown.child_token();
        let work = tokio::spawn(lead(duties.clone(), term.clone()));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            if !session.confirm(CONFIRM_WITHIN).await {
                tracing::warn!("lost the leader's lock; standing by");
                break;
            }
        }
        term.cancel();
        let _ = work.await;
        metrics::gauge!("hookgate_leader").set(0.0);
        leading.send_replace(false);
        session.close().await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Runs every duty until `term`.
async fn lead(duties: Arc<Duties>, term: CancellationToken) {
    let config = &duties.config;
    let sources: Vec<String> = config.sources.iter().map(|s| s.name.clone()).collect();
    let alerts = Arc::new(alerts::Alerts::new(config));
    let _ = tokio::join!(
        scheduler::run(
            duties.store.clone(),
            duties.streams.clone(),
            sources.clone(),
            Routes::new(config),
            Rules::new(config).ordered,
            config.worker.schedule_interval,
            term.clone(),
        ),
        gauges::run(
            duties.store.clone(),
            duties.streams.clone(),
            sources,
            Routes::new(config),
            alerts.clone(),
            term.clone(),
        ),
        alerts.send(duties.store.clone(), term.clone()),
        crate::retention::run(
            duties.store.clone(),
            crate::retention::Policy::new(config),
            config.retention.interval,
            term.clone(),
        ),
        upkeep::run(
            config.clone(),
            duties.streams.clone(),
            duties.consumer.clone(),
            term.clone(),
        ),
    );
}
