//! What the operator commands share: reading times and ids from the command line, and
//! printing tables and JSON.

use crate::time_filter;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// Operator mistakes in arguments, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error(
        "{flag} {value:?} is neither an RFC 3339 time like 2026-11-23T10:00:00Z nor an age like 24h or 30m"
    )]
    BadTime { flag: &'static str, value: String },
    #[error("--since {since} is after --until {until}: nothing can match")]
    EmptyWindow { since: String, until: String },
    #[error("{value:?} is not {what} id (a UUID)")]
    BadId { what: &'static str, value: String },
}

/// `--since` (inclusive) and `--until` (exclusive).
#[derive(Debug)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    /// Each an RFC 3339 time or an age before `now`; refused when nothing can match.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, ArgError> {
        let window = Self {
            since: since.map(|v| time("--since", v, now)).transpose()?,
            until: until.map(|v| time("--until", v, now)).transpose()?,
        };
        if let (Some(since), Some(until)) = (window.since, window.until)
            && since > until
        {
            return Err(ArgError::EmptyWindow {
                since: rfc3339(since),
                until: rfc3339(until),
            });
        }
        Ok(window)
    }
}

pub fn time(
    flag: &'static str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ArgError> {
    time_filter::parse(value, now).ok_or_else(|| ArgError::BadTime {
        flag,
        value: value.to_string(),
    })
}

/// `what` names the kind of id in the message: "a dead letter", "an event".
pub fn id(what: &'static str, text: &str) -> Result<Uuid, ArgError> {
    Uuid::parse_str(text).map_err(|_| ArgError::BadId {
        what,
        value: text.to_string(),
    })
}

pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `text` on one line (control characters as spaces), cut to `max` characters with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// Aligned columns, two spaces apart, the first line being the header; empty for no rows.
pub fn columns(lines: &[Vec<String>]) -> String {
    if lines.len() <= 1 {
        return String::new();
    }
    let mut widths = vec![0; lines[0].len()];
    for line in lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        let (last, cells) = line.split_last().expect("every line has cells");
        for (cell, width) in cells.iter().zip(&widths) {
            out.push_str(cell);
            let pad = width - cell.chars().count() + 2;
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(last);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_name_the_flag_or_the_kind_of_id() {
        let now = "2026-11-23T12:00:00Z".parse().unwrap();
        let error = time("--until", "yesterday", now).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--until \"yesterday\" is neither")
        );
        let error = Window::parse(Some("1h"), Some("2h"), now).unwrap_err();
        assert!(error.to_string().ends_with("nothing can match"), "{error}");
        let error = id("an event", "42").unwrap_err();
        assert_eq!(error.to_string(), "\"42\" is not an event id (a UUID)");
    }

    #[test]
    fn long_errors_are_cut_on_one_line() {
        assert_eq!(one_line("short\nerror", 60), "short error");
        let cut = one_line(&"é".repeat(100), 60);
        assert_eq!(cut.chars().count(), 60);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn columns_are_aligned_under_their_header() {
        let lines = [
            vec!["ID".to_string(), "STATE".into()],
            vec!["abc".to_string(), "dead".into()],
        ];
        assert_eq!(columns(&lines), "ID   STATE\nabc  dead\n");
        assert_eq!(columns(&lines[..1]), "");
    }
}
