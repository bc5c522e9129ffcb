//! Human-friendly durations ("10s", "1h") and sizes ("1MiB"), parsed once at start.

use bytesize::ByteSize;
use std::time::Duration;

pub fn duration(key: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{key}: {text:?} is not a duration like \"10s\" or \"5m\" ({e})"))
}

pub fn size(key: &str, text: &str) -> Result<usize, String> {
    let parsed: ByteSize = text
        .parse()
        .map_err(|e| format!("{key}: {text:?} is not a size like \"1MiB\" ({e})"))?;
    usize::try_from(parsed.as_u64()).map_err(|_| format!("{key}: {text:?} is too large"))
}

/// A rate such as `"50/s"` or `"3000/m"`: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// The time between two events at this rate.
    pub fn interval(self) -> Duration {
        self.per / self.count
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.per == Duration::from_secs(60) {
            "m"
        } else {
            "s"
        };
        write!(f, "{}/{unit}", self.count)
    }
}

pub fn rate(key: &str, text: &str) -> Result<Rate, String> {
    let refuse = || format!("{key}: {text:?} is not a rate like \"50/s\" or \"3000/m\"");
    let (count, unit) = text.trim().split_once('/').ok_or_else(refuse)?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        _ => return Err(refuse()),
    };
    match count.trim().parse::<u32>() {
        Ok(count) if (1..=1_000_000).contains(&count) => Ok(Rate { count, per }),
        Ok(_) => Err(format!("{key}: {text:?} must allow 1 to 1000000 per unit")),
        Err(_) => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates_per_second_and_per_minute() {
        let fifty = rate("k", "50/s").unwrap();
        assert_eq!(fifty.interval(), Duration::from_millis(20));
        assert_eq!(fifty.to_string(), "50/s");
        let slow = rate("k", " 30 / m ").unwrap();
        assert_eq!(slow.interval(), Duration::from_secs(2));
        assert_eq!(slow.to_string(), "30/m");
        for bad in ["50", "50/h", "x/s", "0/s", "-1/s", "2000000/s"] {
            let err = rate("d.rate_limit", bad).unwrap_err();
            assert!(err.starts_with("d.rate_limit: "), "{err}");
        }
    }

    #[test]
    fn parses_durations_and_sizes() {
        assert_eq!(duration("k", "10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("k", "5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("k", "250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(size("k", "1MiB"), Ok(1 << 20));
        assert_eq!(size("k", "25 MiB"), Ok(25 << 20));
        assert_eq!(size("k", "512KiB"), Ok(512 << 10));
        assert_eq!(size("k", "1000"), Ok(1000));
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let err = duration("retry.max_delay", "soon").unwrap_err();
        assert!(err.starts_with("retry.max_delay: \"soon\""), "{err}");
        let err = size("sources[0].max_body", "big").unwrap_err();
        assert!(err.starts_with("sources[0].max_body: \"big\""), "{err}");
    }
}
