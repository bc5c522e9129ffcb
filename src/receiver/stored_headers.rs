//! The request headers as stored with the event.

use axum::http::HeaderMap;
use serde_json::Value;

/// Credentials a proxy or client may add; they identify nothing about the webhook and must not
/// sit in the database in plain text.
const REDACTED: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

/// `[[name, value], ...]` in arrival order, so repeated headers are kept.
pub fn to_json(headers: &HeaderMap) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|(name, value)| {
                let value = if REDACTED.contains(&name.as_str()) {
                    "[redacted]".into()
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                Value::Array(vec![name.as_str().into(), value.into()])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_repeats_and_redacts_credentials() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().unwrap());
        headers.append("x-a", "2".parse().unwrap());
        headers.append("authorization", "Bearer hunter2".parse().unwrap());
        assert_eq!(
            to_json(&headers),
            json!([["x-a", "1"], ["x-a", "2"], ["authorization", "[redacted]"]])
        );
    }
}
