//! Where events go and how hard hookgate tries: destinations, the retry policy, the worker.

use super::throttle::{self, Throttle};
use super::{tls, units};
use crate::event_type::EventPattern;
use crate::routing::{BodyFilter, Selector};
use crate::tls::TlsSettings;
use crate::verify::standard;
use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// An internal service that receives a source's events.
#[derive(Debug)]
pub struct Destination {
    pub name: String,
    pub target: Target,
    /// Key for the outgoing `webhook-signature` (Standard Webhooks), when a secret is set.
    pub signing_key: Option<standard::SigningKey>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// An `https://` destination's own CA or client certificate; `None`: the public roots.
    pub tls: Option<TlsSettings>,
    /// Which of its source's events it takes (`events`, `filter`).
    pub selector: Selector,
    pub breaker: Breaker,
    pub throttle: Throttle,
    /// One delivery at a time, in the order the events were received.
    pub ordered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// POST to this `http://` or `https://` URL, giving up after the timeout.
    Http { url: String, timeout: Duration },
    /// XADD to this Redis stream, which the service reads with its own consumer group.
    /// Entries beyond the newest `max_len` are trimmed once every group has read and acked them.
    Stream { key: String, max_len: u64 },
}

/// Attempt n waits `min(initial_delay * multiplier^(n-1), max_delay)`, then +/- `jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    /// Fraction of the delay, 0.0 to 1.0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 10 s, 100 s, 1000 s, then an hour apart: eight attempts span about five hours.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_delay: Duration::from_secs(10),
            multiplier: 10.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerConfig {
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// A delivery (and its stream entry) whose worker went silent this long is taken over.
    pub visibility_timeout: Duration,
    /// How often due retries and lost stream entries are looked for.
    pub schedule_interval: Duration,
    /// In-flight deliveries get this long to finish on shutdown; the rest are handed back.
    pub shutdown_deadline: Duration,
    /// A consumer of hookgate's group idle this long with nothing pending is removed: every
    /// process start adds one, and a stopped process never comes back under the same name.
    pub consumer_idle_limit: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            visibility_timeout: Duration::from_secs(60),
            schedule_interval: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(20),
            consumer_idle_limit: Duration::from_secs(3600),
        }
    }
}

#[derive(Deserialize, Default, Clone)]
pub(super) struct RawRetry {
    max_attempts: Option<u32>,
    initial_delay: Option<String>,
    multiplier: Option<f64>,
    max_delay: Option<String>,
    jitter: Option<f64>,
}

impl RawRetry {
    /// `self` over `base`: a source's `[sources.retry]` overrides the global `[retry]` key by key.
    pub(super) fn over(&self, base: &RawRetry) -> RawRetry {
        RawRetry {
            max_attempts: self.max_attempts.or(base.max_attempts),
            initial_delay: self.initial_delay.clone().or(base.initial_delay.clone()),
            multiplier: self.multiplier.or(base.multiplier),
            max_delay: self.max_delay.clone().or(base.max_delay.clone()),
            jitter: self.jitter.or(base.jitter),
        }
    }

    pub(super) fn validate(&self, key: &str, problems: &mut Vec<String>) -> RetryPolicy {
        let d = RetryPolicy::default();
        let mut duration = |name: &str, value: &Option<String>, default: Duration| match value {
            Some(text) => units::duration(&format!("{key}.{name}"), text)
                .map_err(|p| problems.push(p))
                .unwrap_or(default),
            None => default,
        };
        let policy = RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            initial_delay: duration("initial_delay", &self.initial_delay, d.initial_delay),
            multiplier: self.multiplier.unwrap_or(d.multiplier),
            max_delay: duration("max_delay", &self.max_delay, d.max_delay),
            jitter: self.jitter.unwrap_or(d.jitter),
        };
        if !(1..=100).contains(&policy.max_attempts) {
            problems.push(format!("{key}.max_attempts: must be between 1 and 100"));
        }
        if !(policy.multiplier >= 1.0 && policy.multiplier <= 1000.0) {
            problems.push(format!("{key}.multiplier: must be between 1 and 1000"));
        }
        if !(0.0..=1.0).contains(&policy.jitter) {
            problems.push(format!("{key}.jitter: must be between 0 and 1"));
        }
        if policy.max_delay < policy.initial_delay {
            problems.push(format!("{key}.max_delay: must not be below initial_delay"));
        }
        policy
    }
}

#[derive(Deserialize, Default)]
pub(super) struct RawWorker {
    concurrency: Option<usize>,
    visibility_timeout: Option<String>,
    schedule_interval: Option<String>,
    shutdown_deadline: Option<String>,
    consumer_idle_limit: Option<String>,
}

impl RawWorker {
    pub(super) fn validate(&self, problems: &mut Vec<String>) -> WorkerConfig {
        let d = WorkerConfig::default();
        let mut duration = |name: &str, value: &Option<String>, default: Duration| match value {
            Some(text) => units::duration(&format!("worker.{name}"), text)
                .map_err(|p| problems.push(p))
                .unwrap_or(default),
            None => default,
        };
        let config = WorkerConfig {
            concurrency: self.concurrency.unwrap_or(d.concurrency),
            visibility_timeout: duration(
                "visibility_timeout",
                &self.visibility_timeout,
                d.visibility_timeout,
            ),
            schedule_interval: duration(
                "schedule_interval",
                &self.schedule_interval,
                d.schedule_interval,
            ),
            shutdown_deadline: duration(
                "shutdown_deadline",
                &self.shutdown_deadline,
                d.shutdown_deadline,
            ),
            consumer_idle_limit: duration(
                "consumer_idle_limit",
                &self.consumer_idle_limit,
                d.consumer_idle_limit,
            ),
        };
        if !(1..=4096).contains(&config.concurrency) {
            problems.push("worker.concurrency: must be between 1 and 4096".to_string());
        }
        if config.schedule_interval.is_zero()
            || config.visibility_timeout.is_zero()
            || config.consumer_idle_limit.is_zero()
        {
            problems.push(
                "worker: schedule_interval, visibility_timeout and consumer_idle_limit must be above zero"
                    .to_string(),
            );
        }
        config
    }
}

#[derive(Deserialize)]
pub(super) struct RawDestination {
    name: String,
    url: Option<String>,
    stream: Option<String>,
    max_len: Option<u64>,
    timeout: Option<String>,
    secret: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    ca_file: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    events: Option<Vec<String>>,
    filter: Option<RawFilter>,
    breaker_failures: Option<u32>,
    breaker_cool_down: Option<String>,
    breaker_max_cool_down: Option<String>,
    rate_limit: Option<String>,
    max_in_flight: Option<u32>,
    ordered: Option<bool>,
}

#[derive(Deserialize)]
struct RawFilter {
    json_pointer: String,
    equals: serde_json::Value,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_LEN: u64 = 100_000;

impl RawDestination {
    pub(super) fn validate(
        self,
        key: &str,
        visibility_timeout: Duration,
        problems: &mut Vec<String>,
    ) -> Option<Destination> {
        let before = problems.len();
        if !super::source::valid_name(&self.name) {
            problems.push(format!(
                "{key}.name: {:?} must be 1-64 characters of a-z, 0-9, '_' or '-'",
                self.name
            ));
        }
        let timeout = match &self.timeout {
            Some(text) => units::duration(&format!("{key}.timeout"), text)
                .map_err(|p| problems.push(p))
                .ok(),
            None => Some(DEFAULT_TIMEOUT),
        };
        let tls = self.tls(key, problems);
        let selector = self.selector(key, problems);
        let breaker = RawBreaker {
            breaker_failures: self.breaker_failures,
            breaker_cool_down: self.breaker_cool_down.clone(),
            breaker_max_cool_down: self.breaker_max_cool_down.clone(),
        }
        .validate(key, problems);
        let throttle = throttle::validate(
            key,
            self.rate_limit.as_deref(),
            self.max_in_flight,
            problems,
        );
        let target = match (self.url, self.stream) {
            (Some(url), None) if url.starts_with("http://") || url.starts_with("https://") => {
                if self.max_len.is_some() {
                    problems.push(format!("{key}.max_len: is for stream destinations"));
                }
                if timeout.is_some_and(|t| t >= visibility_timeout) {
                    problems.push(format!(
                        "{key}.timeout: must be below worker.visibility_timeout ({visibility_timeout:?}), or a slow delivery would be taken over while it runs"
                    ));
                }
                Some(Target::Http {
                    url,
                    timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
                })
            }
            (Some(url), None) => {
                problems.push(format!(
                    "{key}.url: {url:?} must start with http:// or https://"
                ));
                None
            }
            (None, Some(stream)) if !stream.is_empty() => {
                if self.timeout.is_some() || self.secret.is_some() || !self.headers.is_empty() {
                    problems.push(format!(
                        "{key}: timeout, secret and headers are for url destinations"
                    ));
                }
                let max_len = self.max_len.unwrap_or(DEFAULT_MAX_LEN);
                if max_len == 0 {
                    problems.push(format!("{key}.max_len: must be at least 1"));
                }
                Some(Target::Stream {
                    key: stream,
                    max_len,
                })
            }
            _ => {
                problems.push(format!("{key}: set exactly one of url or stream"));
                None
            }
        };
        let signing_key = match self.secret.as_deref().map(standard::SigningKey::parse) {
            Some(Ok(key)) => Some(key),
            Some(Err(e)) => {
                problems.push(format!("{key}.secret: {e}"));
                None
            }
            None => None,
        };
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                _ => problems.push(format!("{key}.headers: {name:?} is not a valid header")),
            }
        }
        if problems.len() != before {
            return None;
        }
        Some(Destination {
            name: self.name,
            target: target?,
            signing_key,
            headers,
            tls,
            selector,
            breaker,
            throttle,
            ordered: self.ordered.unwrap_or(false),
        })
    }

    /// `events` and `filter`: which of its source's events this destination takes.
    fn selector(&self, key: &str, problems: &mut Vec<String>) -> Selector {
        let events = self.events.as_ref().map(|entries| {
            if entries.is_empty() {
                problems.push(format!(
                    "{key}.events: lists no event type (leave it out for every event)"
                ));
            }
            (entries.iter())
                .filter_map(|entry| {
                    EventPattern::parse(entry)
                        .map_err(|e| problems.push(format!("{key}.events: {entry:?} {e}")))
                        .ok()
                })
                .collect()
        });
        let filter = self.filter.as_ref().and_then(|f| {
            if !f.json_pointer.starts_with('/') {
                problems.push(format!(
                    "{key}.filter.json_pointer: {:?} must start with '/' (RFC 6901)",
                    f.json_pointer
                ));
                return None;
            }
            Some(BodyFilter {
                json_pointer: f.json_pointer.clone(),
                equals: f.equals.clone(),
            })
        });
        Selector { events, filter }
    }

    /// The TLS keys, which only an `https://` destination takes.
    fn tls(&self, key: &str, problems: &mut Vec<String>) -> Option<TlsSettings> {
        if self.ca_file.is_none() && self.client_cert.is_none() && self.client_key.is_none() {
            return None;
        }
        let https = self.stream.is_none()
            && (self.url.as_deref()).is_some_and(|url| url.starts_with("https://"));
        if !https {
            problems.push(format!(
                "{key}: ca_file, client_cert and client_key are for https:// URLs"
            ));
            return None;
        }
        let ca = (self.ca_file.as_deref())
            .and_then(|path| tls::private_ca(&format!("{key}.ca_file"), path, problems));
        let client_certificate = tls::client_certificate(
            key,
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
            problems,
        );
        Some(TlsSettings {
            ca,
            client_certificate,
        })
    }
}

/// A destination's circuit breaker: after `failures` failed attempts in a row its deliveries
/// wait for `cool_down` without spending attempts, then one probe decides; each failed probe
/// doubles the wait, up to `max_cool_down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// 0: no breaker.
    pub failures: u32,
    pub cool_down: Duration,
    pub max_cool_down: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failures: 20,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(600),
        }
    }
}

/// The breaker's keys of a `[[sources.destinations]]` entry.
#[derive(Default)]
struct RawBreaker {
    breaker_failures: Option<u32>,
    breaker_cool_down: Option<String>,
    breaker_max_cool_down: Option<String>,
}

impl RawBreaker {
    fn validate(&self, key: &str, problems: &mut Vec<String>) -> Breaker {
        let d = Breaker::default();
        let mut duration = |name: &str, value: &Option<String>, default: Duration| match value {
            Some(text) => units::duration(&format!("{key}.{name}"), text)
                .map_err(|p| problems.push(p))
                .unwrap_or(default),
            None => default,
        };
        let breaker = Breaker {
            failures: self.breaker_failures.unwrap_or(d.failures),
            cool_down: duration("breaker_cool_down", &self.breaker_cool_down, d.cool_down),
            max_cool_down: duration(
                "breaker_max_cool_down",
                &self.breaker_max_cool_down,
                d.max_cool_down,
            ),
        };
        if breaker.failures > 100_000 {
            problems.push(format!(
                "{key}.breaker_failures: must be between 0 (no breaker) and 100000"
            ));
        }
        if breaker.cool_down.is_zero() {
            problems.push(format!("{key}.breaker_cool_down: must be above zero"));
        }
        if breaker.max_cool_down < breaker.cool_down {
            problems.push(format!(
                "{key}.breaker_max_cool_down: must not be below breaker_cool_down"
            ));
        }
        breaker
    }
}

#[cfg(test)]
mod breaker_tests {
    use super::*;

    fn validated(raw: RawBreaker) -> (Breaker, Vec<String>) {
        let mut problems = Vec::new();
        let breaker = raw.validate("sources[0].destinations[0]", &mut problems);
        (breaker, problems)
    }

    #[test]
    fn the_breaker_defaults_to_twenty_failures_and_thirty_seconds() {
        let (breaker, problems) = validated(RawBreaker::default());
        assert_eq!(breaker, Breaker::default());
        assert!(problems.is_empty(), "{problems:?}");
        let (breaker, _) = validated(RawBreaker {
            breaker_failures: Some(0),
            breaker_cool_down: Some("5s".into()),
            breaker_max_cool_down: Some("1m".into()),
        });
        assert_eq!(breaker.failures, 0);
        assert_eq!(breaker.cool_down, Duration::from_secs(5));
        assert_eq!(breaker.max_cool_down, Duration::from_secs(60));
    }

    #[test]
    fn every_breaker_problem_is_listed() {
        let (_, problems) = validated(RawBreaker {
            breaker_failures: Some(100_001),
            breaker_cool_down: Some("0s".into()),
            breaker_max_cool_down: Some("soon".into()),
        });
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("breaker_max_cool_down"),
            "{problems:?}"
        );
        assert!(problems[1].contains("breaker_failures: must be between 0"));
        assert!(problems[2].contains("breaker_cool_down: must be above zero"));
        let (_, problems) = validated(RawBreaker {
            breaker_max_cool_down: Some("10s".into()),
            ..RawBreaker::default()
        });
        assert_eq!(
            problems,
            [
                "sources[0].destinations[0].breaker_max_cool_down: must not be below breaker_cool_down"
            ]
        );
    }
}
