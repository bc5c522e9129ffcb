//! A destination's throttle: how fast, and how many at once, across every worker process.

use super::units::{self, Rate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// At most this many deliveries start per unit of time, evenly spaced.
    pub rate_limit: Option<Rate>,
    /// At most this many deliveries are in flight at once.
    pub max_in_flight: Option<u32>,
}

impl Throttle {
    pub fn is_unlimited(&self) -> bool {
        self.rate_limit.is_none() && self.max_in_flight.is_none()
    }
}

pub(super) fn validate(
    key: &str,
    rate_limit: Option<&str>,
    max_in_flight: Option<u32>,
    problems: &mut Vec<String>,
) -> Throttle {
    let rate_limit = rate_limit.and_then(|text| {
        units::rate(&format!("{key}.rate_limit"), text)
            .map_err(|p| problems.push(p))
            .ok()
    });
    if max_in_flight.is_some_and(|n| !(1..=10_000).contains(&n)) {
        problems.push(format!("{key}.max_in_flight: must be between 1 and 10000"));
    }
    Throttle {
        rate_limit,
        max_in_flight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_throttle_takes_a_rate_and_a_bound() {
        let mut problems = Vec::new();
        let throttle = validate("d", Some("50/s"), Some(4), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            throttle.rate_limit.unwrap().interval(),
            Duration::from_millis(20)
        );
        assert_eq!(throttle.max_in_flight, Some(4));
        assert!(validate("d", None, None, &mut problems).is_unlimited());
    }

    #[test]
    fn every_throttle_problem_is_listed() {
        let mut problems = Vec::new();
        validate("d", Some("fast"), Some(0), &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("d.rate_limit: \"fast\""));
        assert_eq!(problems[1], "d.max_in_flight: must be between 1 and 10000");
    }
}
