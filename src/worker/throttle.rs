//! Destination throttles (`rate_limit`, `max_in_flight`), held across every worker process by
//! Redis (see `queue::throttle`), as each claimed delivery meets them.
//!
//! A rate is a schedule: every delivery reserves the next slot, one interval after the last.
//! A slot within [`lead`](Throttles::lead) is waited for here; a later one is kept with the
//! delivery, which is deferred in Postgres until shortly before it (no attempt spent), so a
//! backlog waits in Postgres rather than in memory, and each delivery is deferred once.
//! In-flight places are taken after the slot, for at most [`FLIGHT_PATIENCE`]; a delivery that
//! finds none is deferred for [`FLIGHT_RETRY`].

use crate::config::{Config, Destination, Throttle};
use crate::queue::stream::Streams;
use crate::queue::throttle::Slot;
use crate::store::deliveries::{Claimed, ClaimedEvent, Next};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a delivery waits here for an in-flight place before it is deferred.
const FLIGHT_PATIENCE: Duration = Duration::from_secs(1);
/// How long a delivery that found no in-flight place waits in Postgres (plus up to as much
/// again at random, so deferred deliveries do not all return at once).
const FLIGHT_RETRY: Duration = Duration::from_secs(1);
/// How long a delivery waits when Redis cannot say: the throttle is never skipped.
const UNKNOWN_RETRY: Duration = Duration::from_secs(5);
/// A kept slot this far in the past is not used: the delivery came back late (its worker
/// died, or Redis or Postgres stalled), and late deliveries going at once would burst; it
/// reserves a fresh slot instead.
const STALE_SLOT: Duration = Duration::from_millis(250);
/// The pauses between asking Redis for an in-flight place.
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(100);

pub struct Throttles {
    streams: Streams,
    /// Source -> throttled destination -> its limit; the local share of a bound lets this
    /// process's own deliveries queue here rather than poll Redis.
    limits: HashMap<String, HashMap<String, Limit>>,
    /// A slot at most this far off is waited for here: long enough for a deferred delivery
    /// to be put back on its stream and read again before its slot.
    lead: Duration,
    /// In-flight places are leased for this long: a worker that dies frees them then.
    lease: Duration,
}

/// A destination's throttle, and for a bound this process's share of it.
struct Limit {
    throttle: Throttle,
    local: Option<Arc<Semaphore>>,
}

/// What a delivery does about its destination's throttle.
pub enum Plan {
    /// Go (after `wait`, its rate slot), once it holds an in-flight place if there is a bound.
    Go { wait: Duration },
    /// Not now: the outcome is [`Next::Throttled`] with these.
    Defer {
        requeue_in: Duration,
        slot_in: Option<Duration>,
    },
}

impl Plan {
    fn defer(requeue_in: Duration) -> Self {
        Self::Defer {
            requeue_in,
            slot_in: None,
        }
    }

    pub fn next(&self) -> Option<Next> {
        match *self {
            Plan::Go { .. } => None,
            Plan::Defer {
                requeue_in,
                slot_in,
            } => Some(Next::Throttled {
                requeue_in,
                slot_in,
            }),
        }
    }

    pub fn waits(&self) -> bool {
        matches!(self, Plan::Go { wait } if !wait.is_zero())
    }
}

/// An in-flight place, given back by [`Throttles::land`].
pub struct Flight {
    holder: String,
    _local: OwnedSemaphorePermit,
}

impl Throttles {
    pub fn new(config: &Config, streams: Streams) -> Self {
        let mut limits: HashMap<String, HashMap<String, Limit>> = HashMap::new();
        let throttled = (config.sources.iter())
            .flat_map(|s| s.destinations.iter().map(move |d| (s, d)))
            .filter(|(_, d)| !d.throttle.is_unlimited());
        for (s, d) in throttled {
            let local = (d.throttle.max_in_flight).map(|n| Arc::new(Semaphore::new(n as usize)));
            let limit = Limit {
                throttle: d.throttle,
                local,
            };
            (limits.entry(s.name.clone()).or_default()).insert(d.name.clone(), limit);
        }
        Self {
            streams,
            limits,
            lead: config.worker.schedule_interval + Duration::from_secs(1),
            lease: config.worker.visibility_timeout,
        }
    }

    /// Looked up by reference: a delivery to a destination without a throttle allocates
    /// nothing here.
    fn limit(&self, source: &str, destination: &str) -> Option<&Limit> {
        self.limits.get(source)?.get(destination)
    }

    /// The delivery's rate slot: the one it kept when it was deferred, or a fresh one.
    pub async fn plan(&self, source: &str, destination: &Destination, claimed: &Claimed) -> Plan {
        let Some(rate) =
            (self.limit(source, &destination.name)).and_then(|l| l.throttle.rate_limit)
        else {
            return Plan::Go {
                wait: Duration::ZERO,
            };
        };
        let kept = (claimed.throttle_slot)
            .filter(|s| *s > -STALE_SLOT.as_secs_f64())
            .map(|s| Duration::from_secs_f64(s.max(0.0)));
        let wait = match kept {
            Some(wait) => wait,
            None => {
                // Reserved whatever the wait: a slot far off is kept with the deferred delivery.
                let scope = scope(&destination.name);
                match (self.streams)
                    .reserve_slot(source, &scope, rate.interval(), Duration::MAX)
                    .await
                {
                    Ok(Slot::In(wait)) => wait,
                    Ok(Slot::Refused(_)) => unreachable!("a slot is reserved however far"),
                    Err(error) => {
                        tracing::warn!(%error, source, destination = %destination.name, "cannot reach the throttle's rate; deferring");
                        return Plan::defer(UNKNOWN_RETRY);
                    }
                }
            }
        };
        if wait > self.lead {
            throttled(source, &destination.name, "rate_limit");
            return Plan::Defer {
                requeue_in: wait - self.lead,
                slot_in: Some(wait),
            };
        }
        if wait >= Duration::from_millis(1) {
            throttled(source, &destination.name, "rate_limit");
        }
        Plan::Go { wait }
    }

    /// Takes an in-flight place if the destination has a bound: `Ok(None)` without one,
    /// `Err(plan)` when none came free in time.
    pub async fn take_off(
        &self,
        source: &str,
        destination: &str,
        event: &ClaimedEvent,
    ) -> Result<Option<Flight>, Plan> {
        let Some(Limit {
            throttle,
            local: Some(local),
        }) = self.limit(source, destination)
        else {
            return Ok(None);
        };
        let limit = throttle
            .max_in_flight
            .expect("a local share only for a bound");
        let deadline = Instant::now() + FLIGHT_PATIENCE;
        let deferred = || {
            throttled(source, destination, "max_in_flight");
            let jitter = FLIGHT_RETRY.mul_f64(rand::random::<f64>());
            Err(Plan::defer(FLIGHT_RETRY + jitter))
        };
        let Ok(Ok(local)) = tokio::time::timeout_at(deadline, local.clone().acquire_owned()).await
        else {
            return deferred();
        };
        let holder = format!("{}:{}", event.lease_token, event.event_id);
        let scope = scope(destination);
        let mut pause = FIRST_POLL;
        loop {
            match (self.streams)
                .take_flight(source, &scope, limit, &holder, self.lease)
                .await
            {
                Ok(true) => {
                    return Ok(Some(Flight {
                        holder,
                        _local: local,
                    }));
                }
                Ok(false) if Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_POLL);
                }
                Ok(false) => return deferred(),
                Err(error) => {
                    tracing::warn!(%error, source, destination, "cannot reach the throttle's bound; deferring");
                    return Err(Plan::defer(UNKNOWN_RETRY));
                }
            }
        }
    }

    /// Gives an in-flight place back. Should that fail, the place frees itself when its lease
    /// ends.
    pub async fn land(&self, source: &str, destination: &str, flight: Flight) {
        if let Err(error) = (self.streams)
            .end_flight(source, &scope(destination), &flight.holder)
            .await
        {
            tracing::warn!(%error, source, destination, "cannot give an in-flight place back; it frees itself when its lease ends");
        }
    }
}

/// Destination names cannot hold ':', so no destination's scope is another limit's.
fn scope(destination: &str) -> String {
    format!("destination:{destination}")
}

fn throttled(source: &str, destination: &str, reason: &'static str) {
    metrics::counter!("hookgate_throttled_total", "source" => source.to_string(), "destination" => destination.to_string(), "reason" => reason).increment(1);
}
