//! The provider's event id: the key that makes a retried webhook a duplicate.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// Longer ids are refused rather than stored: no provider sends one, and the unique index
/// should not carry attacker-sized keys.
pub const MAX_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// Lowercase header name.
    Header(String),
    /// Lowercase header names, the first present and non-empty one wins: one id that senders
    /// name differently (Standard Webhooks' `webhook-id`, Svix's `svix-id`).
    FirstHeader(Vec<String>),
    /// RFC 6901 pointer into a JSON body, e.g. `/id`.
    JsonPointer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdRule {
    pub from: Option<IdSource>,
    /// Use the hex SHA-256 of the body when `from` finds nothing: identical bodies are then
    /// one event, which is what a sender without ids means by a retry.
    pub fallback_body_sha256: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventIdError {
    #[error("no event id: {0}")]
    Missing(String),
    #[error("event id is longer than {MAX_LEN} bytes")]
    TooLong,
    /// Postgres text cannot hold NUL: refused here as a 400, not failed later as a 503 that
    /// the provider would retry forever.
    #[error("event id contains a NUL character")]
    Nul,
}

impl EventIdRule {
    pub fn header(name: &str) -> Self {
        Self {
            from: Some(IdSource::Header(name.to_ascii_lowercase())),
            fallback_body_sha256: false,
        }
    }

    pub fn first_header(names: &[&str]) -> Self {
        Self {
            from: Some(IdSource::FirstHeader(
                names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            )),
            fallback_body_sha256: false,
        }
    }

    pub fn json_pointer(pointer: &str) -> Self {
        Self {
            from: Some(IdSource::JsonPointer(pointer.to_string())),
            fallback_body_sha256: false,
        }
    }

    /// For senders without ids: identical bodies are one event.
    pub fn body_sha256() -> Self {
        Self {
            from: None,
            fallback_body_sha256: true,
        }
    }

    pub fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Result<String, EventIdError> {
        let found = match &self.from {
            Some(IdSource::Header(name)) => from_header(headers, name),
            Some(IdSource::FirstHeader(names)) => {
                names.iter().find_map(|name| from_header(headers, name))
            }
            Some(IdSource::JsonPointer(pointer)) => from_json(body, pointer),
            None => None,
        };
        match found {
            Some(id) if id.len() > MAX_LEN => Err(EventIdError::TooLong),
            Some(id) if id.contains('\0') => Err(EventIdError::Nul),
            Some(id) => Ok(id),
            None if self.fallback_body_sha256 => Ok(hex::encode(Sha256::digest(body))),
            None => Err(EventIdError::Missing(match &self.from {
                Some(IdSource::Header(name)) => format!("header {name} is missing or empty"),
                Some(IdSource::FirstHeader(names)) => {
                    format!("headers {} are missing or empty", names.join(" and "))
                }
                Some(IdSource::JsonPointer(p)) => {
                    format!("the JSON body has no string or number at {p}")
                }
                None => "the source defines no event id".to_string(),
            })),
        }
    }
}

fn from_header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn from_json(body: &[u8], pointer: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.pointer(pointer)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn header_rule() {
        let rule = EventIdRule::header("X-GitHub-Delivery");
        let h = headers(&[("x-github-delivery", " 72d3162e ")]);
        assert_eq!(rule.extract(&h, b""), Ok("72d3162e".into()));
        assert!(matches!(
            rule.extract(&headers(&[]), b""),
            Err(EventIdError::Missing(m)) if m.contains("x-github-delivery")
        ));
    }

    #[test]
    fn first_header_rule_takes_the_first_name_present() {
        let rule = EventIdRule::first_header(&["webhook-id", "svix-id"]);
        let svix = headers(&[("svix-id", "msg_svix")]);
        assert_eq!(rule.extract(&svix, b""), Ok("msg_svix".into()));
        let both = headers(&[("svix-id", "msg_svix"), ("webhook-id", "msg_std")]);
        assert_eq!(rule.extract(&both, b""), Ok("msg_std".into()));
        let empty_first = headers(&[("webhook-id", " "), ("svix-id", "msg_svix")]);
        assert_eq!(rule.extract(&empty_first, b""), Ok("msg_svix".into()));
        assert!(matches!(
            rule.extract(&headers(&[]), b""),
            Err(EventIdError::Missing(m)) if m.contains("webhook-id") && m.contains("svix-id")
        ));
    }

    #[test]
    fn json_pointer_rule_takes_strings_and_numbers() {
        let rule = EventIdRule::json_pointer("/data/id");
        let none = HeaderMap::new();
        assert_eq!(
            rule.extract(&none, br#"{"data":{"id":"evt_1"}}"#),
            Ok("evt_1".into())
        );
        assert_eq!(
            rule.extract(&none, br#"{"data":{"id":42}}"#),
            Ok("42".into())
        );
        for body in [
            &br#"{"data":{}}"#[..],
            b"not json",
            br#"{"data":{"id":null}}"#,
        ] {
            assert!(matches!(
                rule.extract(&none, body),
                Err(EventIdError::Missing(_))
            ));
        }
    }

    #[test]
    fn fallback_hashes_the_body() {
        let rule = EventIdRule {
            from: Some(IdSource::JsonPointer("/event_id".into())),
            fallback_body_sha256: true,
        };
        let none = HeaderMap::new();
        assert_eq!(
            rule.extract(&none, b"token=x&text="),
            Ok(hex::encode(Sha256::digest(b"token=x&text=")))
        );
        assert_eq!(
            rule.extract(&none, br#"{"event_id":"Ev1"}"#),
            Ok("Ev1".into())
        );
    }

    #[test]
    fn ids_with_nul_are_refused() {
        let rule = EventIdRule::json_pointer("/id");
        let body = br#"{"id":"evt_\u0000x"}"#;
        assert_eq!(
            rule.extract(&HeaderMap::new(), body),
            Err(EventIdError::Nul)
        );
    }

    #[test]
    fn overlong_ids_are_refused() {
        let rule = EventIdRule::header("x-id");
        let long = "a".repeat(MAX_LEN + 1);
        let mut h = HeaderMap::new();
        h.insert("x-id", long.parse().unwrap());
        assert_eq!(rule.extract(&h, b""), Err(EventIdError::TooLong));
    }
}
