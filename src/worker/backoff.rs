//! The retry schedule.

use crate::config::RetryPolicy;
use std::time::Duration;

/// How long to wait after failed attempt `attempt` (from 1):
/// `min(initial_delay * multiplier^(attempt-1), max_delay)`, then moved by up to +/- `jitter`
/// of itself so that a destination's outage does not turn into synchronized retry waves.
/// `unit_random` is in `[0, 1)`: passed in, so the schedule is testable without chance.
pub fn delay(policy: &RetryPolicy, attempt: u32, unit_random: f64) -> Duration {
    let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let base = (policy.initial_delay.as_secs_f64() * policy.multiplier.powi(exponent))
        .min(policy.max_delay.as_secs_f64());
    let jitter = base * policy.jitter * (2.0 * unit_random - 1.0);
    Duration::from_secs_f64((base + jitter).max(0.0))
}

/// A destination's own `Retry-After` wins, within `max_delay`.
pub fn honour_retry_after(policy: &RetryPolicy, retry_after: Duration) -> Duration {
    retry_after.min(policy.max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn default_schedule_is_10s_100s_1000s_then_capped_at_an_hour() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let delays: Vec<f64> = (1..=8).map(|n| secs(delay(&policy, n, 0.5))).collect();
        assert_eq!(
            delays,
            [10.0, 100.0, 1000.0, 3600.0, 3600.0, 3600.0, 3600.0, 3600.0]
        );
        assert_eq!(secs(delay(&policy, u32::MAX, 0.5)), 3600.0, "no overflow");
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::default(); // jitter 0.2
        assert_eq!(secs(delay(&policy, 1, 0.0)), 8.0);
        assert_eq!(secs(delay(&policy, 1, 0.5)), 10.0);
        assert!((secs(delay(&policy, 1, 0.999_999)) - 12.0).abs() < 1e-3);
    }

    #[test]
    fn retry_after_is_capped_at_max_delay() {
        let policy = RetryPolicy::default();
        assert_eq!(
            honour_retry_after(&policy, Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(
            honour_retry_after(&policy, Duration::from_secs(86_400)),
            Duration::from_secs(3600)
        );
    }
}
