//! How long settled events and dead letters are kept, and how often expired ones are deleted.

use super::units;
use std::time::Duration;

/// Past this, `now - retention` would leave the range of a Postgres timestamp; keeping rows
/// longer is not a retention policy anyway.
const LONGEST: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Settled events of a source without its own `retention` (or no longer configured).
    pub events: Duration,
    /// Dead letters, counted from their creation.
    pub dead_letters: Duration,
    /// How often a pass runs.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(30 * 24 * 3600),
            dead_letters: Duration::from_secs(90 * 24 * 3600),
            interval: Duration::from_secs(60),
        }
    }
}

impl Retention {
    /// The global keys, defaults for those left out; every problem is pushed onto `problems`.
    pub(super) fn validate(
        events: Option<&str>,
        dead_letters: Option<&str>,
        interval: Option<&str>,
        problems: &mut Vec<String>,
    ) -> Self {
        let d = Self::default();
        let mut take = |key, text: Option<&str>, default| match text {
            Some(text) => period(key, text).map_err(|p| problems.push(p)).ok(),
            None => Some(default),
        };
        Self {
            events: take("retention", events, d.events).unwrap_or(d.events),
            dead_letters: take("dead_letter_retention", dead_letters, d.dead_letters)
                .unwrap_or(d.dead_letters),
            interval: take("retention_interval", interval, d.interval).unwrap_or(d.interval),
        }
    }
}

/// A retention or interval: a duration from one second to a hundred years.
pub(super) fn period(key: &str, text: &str) -> Result<Duration, String> {
    let duration = units::duration(key, text)?;
    if duration < Duration::from_secs(1) || duration > LONGEST {
        return Err(format!("{key}: {text:?} must be between 1s and 100 years"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_every_bad_period_is_listed() {
        let mut problems = Vec::new();
        assert_eq!(
            Retention::validate(None, None, None, &mut problems),
            Retention::default()
        );
        assert!(problems.is_empty());
        let short = Retention::validate(Some("7d"), Some("1s"), Some("30s"), &mut problems);
        assert_eq!(short.events, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(short.dead_letters, Duration::from_secs(1));
        assert_eq!(short.interval, Duration::from_secs(30));
        assert!(problems.is_empty());

        Retention::validate(Some("0s"), Some("1000y"), Some("often"), &mut problems);
        let expected = [
            "retention: \"0s\" must be between 1s and 100 years",
            "dead_letter_retention: \"1000y\" must be between 1s and 100 years",
            "retention_interval: \"often\" is not a duration",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, expected) in problems.iter().zip(expected) {
            assert!(problem.starts_with(expected), "{problem}");
        }
    }

    #[test]
    fn a_source_may_keep_its_events_longer_or_shorter() {
        let source = |name: &str, retention: &str| {
            format!(
                "[[sources]]\nname = \"{name}\"\nprovider = \"github\"\nsecrets = [\"x\"]\n{retention}\n"
            )
        };
        let text = format!(
            "database_url = \"postgres://h/db\"\nredis_url = \"redis://h\"\nretention = \"14d\"\n{}{}",
            source("short", "retention = \"10s\""),
            source("default", ""),
        );
        let config = crate::config::Config::parse("t", &text, &|_| None).unwrap();
        assert_eq!(config.retention.events, Duration::from_secs(14 * 24 * 3600));
        assert_eq!(
            config.source("short").unwrap().retention,
            Some(Duration::from_secs(10))
        );
        assert_eq!(config.source("default").unwrap().retention, None);

        let bad = text.replace("\"10s\"", "\"0s\"");
        let error = crate::config::Config::parse("t", &bad, &|_| None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("sources[0].retention: \"0s\" must be between 1s and 100 years"),
            "{error}"
        );
    }
}
