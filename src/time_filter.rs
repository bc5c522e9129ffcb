//! Times in filters, shared by the CLI and the admin API: an RFC 3339 time, or an age (`12h`)
//! meaning that long before now, so "everything dead-lettered last night" is one short flag.

use chrono::{DateTime, Utc};

/// `None` when `value` is neither an RFC 3339 time nor an age.
pub fn parse(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Some(time.with_timezone(&Utc));
    }
    let age = humantime::parse_duration(value).ok()?;
    now.checked_sub_signed(chrono::Duration::from_std(age).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn times_are_rfc3339_or_ages_before_now() {
        let now = at("2026-11-23T12:00:00Z");
        assert_eq!(
            parse("2026-11-23T10:00:00Z", now),
            Some(at("2026-11-23T10:00:00Z"))
        );
        assert_eq!(
            parse("2026-11-23T11:00:00+01:00", now),
            Some(at("2026-11-23T10:00:00Z"))
        );
        assert_eq!(parse("90m", now), Some(at("2026-11-23T10:30:00Z")));
        assert_eq!(parse("yesterday", now), None);
        assert_eq!(parse("2026-11-23", now), None);
    }
}
