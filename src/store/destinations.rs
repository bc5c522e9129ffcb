//! Each destination's standing (migration 0013): paused by an operator or not, its circuit
//! breaker, and what waits for it. Deliveries that wait are parked by the claim and put back
//! on the stream here, by the scheduler, in arrival order, once their destination may deliver.

use super::admin_actions::{self, Action, Actor};
use super::routes::Routes;
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

/// The oldest pending deliveries a listing reads, at most: pending counts are exact below it.
pub const PENDING_SCAN: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// `route` is `<source>/<destination>`.
    #[error("no destination {route} is configured")]
    NotFound { route: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DestinationError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Db(error))
    }
}

/// One destination as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationStatus {
    pub source: String,
    pub destination: String,
    /// `paused`, or the breaker's state: `closed`, `open` or `half_open`.
    pub state: String,
    pub paused: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    pub breaker: BreakerStatus,
    pub throttle: ThrottleStatus,
    /// Pending deliveries, counted among the oldest [`PENDING_SCAN`] pending ones.
    pub pending: i64,
    /// `pending` is a lower bound: more deliveries are pending than a listing reads.
    pub pending_more: bool,
    pub oldest_pending_at: Option<DateTime<Utc>>,
    pub oldest_pending_age_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakerStatus {
    pub state: String,
    /// Failed attempts in a row.
    pub failures: i32,
    pub open_until: Option<DateTime<Utc>>,
    pub cool_down_ms: Option<i64>,
}

/// The configured throttle; `None` where there is no limit.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleStatus {
    /// Like `"50/s"`.
    pub rate_limit: Option<String>,
    pub max_in_flight: Option<u32>,
}

#[derive(sqlx::FromRow)]
struct Standing {
    source: String,
    destination: String,
    paused: bool,
    paused_at: Option<DateTime<Utc>>,
    paused_by: Option<String>,
    state: String,
    failures: i32,
    open_until: Option<DateTime<Utc>>,
    cool_down_ms: Option<i64>,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Backlog {
    source: String,
    destination: String,
    pending: i64,
    oldest: DateTime<Utc>,
}

/// Whether a pause or resume changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Yes,
    AlreadyThere,
}

impl Store {
    /// Pauses `source`/`destination`, recorded as `actor`'s pause; a paused one is left as it is.
    pub async fn pause(
        &self,
        routes: &Routes,
        source: &str,
        destination: &str,
        actor: &Actor,
    ) -> Result<Changed, DestinationError> {
        configured(routes, source, destination)?;
        let mut tx = self.pool().begin().await?;
        let paused: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO destinations (source, destination, paused, paused_at, paused_by)
             VALUES ($1, $2, true, now(), $3)
             ON CONFLICT (source, destination) DO UPDATE
                 SET paused = true, paused_at = now(), paused_by = $3, changed_at = now()
                 WHERE NOT destinations.paused
             RETURNING paused_at",
        )
        .bind(source)
        .bind(destination)
        .bind(actor.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(at) = paused else {
            return Ok(Changed::AlreadyThere);
        };
        let target = json!({"source": source, "destination": destination});
        admin_actions::record(
            &mut tx,
            actor,
            Action::Pause,
            target,
            json!({"paused_at": at}),
        )
        .await?;
        tx.commit().await?;
        Ok(Changed::Yes)
    }

    /// Resumes a paused `source`/`destination`, recorded as `actor`'s resume: what waited is
    /// put back on the stream in arrival order, before anything that arrives after it.
    pub async fn resume(
        &self,
        routes: &Routes,
        source: &str,
        destination: &str,
        actor: &Actor,
    ) -> Result<Changed, DestinationError> {
        configured(routes, source, destination)?;
        let mut tx = self.pool().begin().await?;
        let paused: Option<(Option<DateTime<Utc>>, Option<String>)> = sqlx::query_as(
            "UPDATE destinations g
             SET paused = false, paused_at = NULL, paused_by = NULL, changed_at = now(),
                 drain_after = '00000000-0000-0000-0000-000000000000'
             FROM (SELECT paused_at, paused_by FROM destinations
                   WHERE source = $1 AND destination = $2 FOR UPDATE) old
             WHERE g.source = $1 AND g.destination = $2 AND g.paused
             RETURNING old.paused_at, old.paused_by",
        )
        .bind(source)
        .bind(destination)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((paused_at, paused_by)) = paused else {
            return Ok(Changed::AlreadyThere);
        };
        let target = json!({"source": source, "destination": destination});
        let outcome = json!({"paused_at": paused_at, "paused_by": paused_by});
        admin_actions::record(&mut tx, actor, Action::Resume, target, outcome).await?;
        tx.commit().await?;
        Ok(Changed::Yes)
    }

    /// Every destination of `routes`, by source and name.
    pub async fn list_destinations(
        &self,
        routes: &Routes,
    ) -> Result<Vec<DestinationStatus>, StoreError> {
        let standings: Vec<Standing> = sqlx::query_as(
            "SELECT source, destination, paused, paused_at, paused_by, state, failures,
                    open_until, cool_down_ms, last_error, last_error_at
             FROM destinations",
        )
        .fetch_all(self.pool())
        .await?;
        let mut standings: HashMap<(String, String), Standing> = (standings.into_iter())
            .map(|s| ((s.source.clone(), s.destination.clone()), s))
            .collect();
        // One bounded walk of the pending index, oldest first, for every destination at once.
        let backlogs: Vec<Backlog> = sqlx::query_as(
            "SELECT e.source, p.destination, count(*) AS pending, min(e.received_at) AS oldest
             FROM (SELECT event_id, destination FROM deliveries WHERE state = 'pending'
                   ORDER BY event_id LIMIT $1) p
             JOIN events e ON e.id = p.event_id
             GROUP BY e.source, p.destination",
        )
        .bind(PENDING_SCAN)
        .fetch_all(self.pool())
        .await?;
        let scanned: i64 = backlogs.iter().map(|b| b.pending).sum();
        let backlogs: HashMap<(String, String), Backlog> = (backlogs.into_iter())
            .map(|b| ((b.source.clone(), b.destination.clone()), b))
            .collect();
        let now = Utc::now();
        let mut pairs: Vec<(&str, &str)> = routes.pairs().collect();
        pairs.sort_unstable();
        Ok((pairs.into_iter())
            .map(|(source, destination)| {
                let key = (source.to_string(), destination.to_string());
                let standing = standings.remove(&key);
                let backlog = backlogs.get(&key);
                let paused = standing.as_ref().is_some_and(|s| s.paused);
                let breaker = BreakerStatus {
                    state: (standing.as_ref()).map_or("closed".to_string(), |s| s.state.clone()),
                    failures: standing.as_ref().map_or(0, |s| s.failures),
                    open_until: standing.as_ref().and_then(|s| s.open_until),
                    cool_down_ms: standing.as_ref().and_then(|s| s.cool_down_ms),
                };
                let oldest = backlog.map(|b| b.oldest);
                let throttle = routes.throttle(source, destination);
                DestinationStatus {
                    source: key.0,
                    destination: key.1,
                    state: match paused {
                        true => "paused".to_string(),
                        false => breaker.state.clone(),
                    },
                    paused,
                    paused_at: standing.as_ref().and_then(|s| s.paused_at),
                    paused_by: standing.as_ref().and_then(|s| s.paused_by.clone()),
                    breaker,
                    throttle: ThrottleStatus {
                        rate_limit: throttle.rate_limit.map(|r| r.to_string()),
                        max_in_flight: throttle.max_in_flight,
                    },
                    pending: backlog.map_or(0, |b| b.pending),
                    pending_more: scanned >= PENDING_SCAN,
                    oldest_pending_at: oldest,
                    oldest_pending_age_seconds: oldest
                        .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0),
                    last_error: standing.as_ref().and_then(|s| s.last_error.clone()),
                    last_error_at: standing.as_ref().and_then(|s| s.last_error_at),
                }
            })
            .collect())
    }

    /// Puts back deliveries that waited for a destination that may deliver again: up to
    /// `limit` per destination that is resumed or closed, in event id order, and one as the
    /// probe of a breaker whose cool-down is over. A destination draining what waited lets
    /// through what was put back; once nothing waits, it drains no more. An `ordered`
    /// destination (`source/destination` keys) that delivers gets none back here: what waits
    /// for it waits its turn, and `store::ordered` lets the next go when the one before ends
    /// (put back a page at a time, each would be parked again by its claim, every tick).
    /// Returns how many were put back (the scheduler then finds them due).
    pub async fn release_waiting(&self, limit: i64, ordered: &[String]) -> Result<u64, StoreError> {
        let released: i64 = sqlx::query_scalar(
            "WITH ready AS (
                 SELECT source, destination, state = 'closed' AS flowing, drain_after,
                        source || '/' || destination = ANY($2) AS ordered
                 FROM destinations
                 WHERE NOT paused
                   AND (state = 'closed'
                        OR (open_until <= now()
                            AND (probe_until IS NULL OR probe_until < now())))
             ), picked AS (
                 SELECT w.ctid, w.event_id, w.destination, r.source,
                        row_number() OVER (ORDER BY w.event_id) AS rank
                 FROM ready r CROSS JOIN LATERAL (
                     -- Through deliveries_waiting (0013), in event id order.
                     SELECT d.ctid, d.event_id, d.destination
                     FROM deliveries d JOIN events e ON e.id = d.event_id
                     WHERE d.state = 'pending' AND d.requeue_at = 'infinity'
                       AND d.destination = r.destination AND e.source = r.source
                     ORDER BY d.event_id
                     LIMIT CASE WHEN NOT r.flowing THEN 1 WHEN r.ordered THEN 0 ELSE $1 END
                     -- Locked, so each is updated by its row address, not looked for again.
                     FOR UPDATE OF d SKIP LOCKED
                 ) w
             ), released AS (
                 -- Microseconds apart, so the scheduler requeues them in arrival order.
                 UPDATE deliveries d
                 SET requeue_at = now() + make_interval(secs => p.rank / 1000000.0),
                     requeue_check = false
                 FROM picked p
                 WHERE d.ctid = ANY (ARRAY(SELECT ctid FROM picked)) AND d.ctid = p.ctid
                 RETURNING p.source, d.destination, d.event_id
             ), counted AS (
                 -- uuid has no max(): the last in event id order.
                 SELECT source, destination, count(*) AS n,
                        (array_agg(event_id ORDER BY event_id DESC))[1] AS last
                 FROM released GROUP BY source, destination
             ), drained AS (
                 UPDATE destinations g
                 SET drain_after = CASE WHEN coalesce(c.n, 0) < $1 THEN NULL
                                        ELSE greatest(g.drain_after, c.last) END
                 FROM ready r LEFT JOIN counted c USING (source, destination)
                 WHERE r.flowing AND r.drain_after IS NOT NULL
                   AND g.source = r.source AND g.destination = r.destination
             )
             SELECT count(*) FROM released",
        )
        .bind(limit)
        .bind(ordered)
        .fetch_one(self.pool())
        .await?;
        Ok(released as u64)
    }

    /// `(source, destination, state)` of every destination with a row: `paused`, or the
    /// breaker's state. The others are closed.
    pub async fn destination_states(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT source, destination, CASE WHEN paused THEN 'paused' ELSE state END
             FROM destinations",
        )
        .fetch_all(self.pool())
        .await?)
    }
}

fn configured(routes: &Routes, source: &str, destination: &str) -> Result<(), DestinationError> {
    match routes.contains(source, destination) {
        true => Ok(()),
        false => Err(DestinationError::NotFound {
            route: format!("{source}/{destination}"),
        }),
    }
}
