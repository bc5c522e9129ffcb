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

#[cfg(test)]
mod tests {
    use super::*;

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
