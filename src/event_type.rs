//! The provider's event type (`push`, `invoice.paid`): stored with the event, and what a
//! destination's `events` list routes on.

use axum::http::HeaderMap;

/// Longer types are not stored: no provider sends one, and the listing index should not carry
/// sender-sized keys. The webhook is still accepted, without a type.
pub const MAX_LEN: usize = 256;

/// Where a source's webhooks carry their type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypeRule {
    /// Lowercase header name.
    Header(String),
    /// RFC 6901 pointer to a string in a JSON body, e.g. `/type`.
    JsonPointer(String),
}

impl EventTypeRule {
    pub fn header(name: &str) -> Self {
        Self::Header(name.to_ascii_lowercase())
    }

    pub fn json_pointer(pointer: &str) -> Self {
        Self::JsonPointer(pointer.to_string())
    }

    /// The type, or `None` when the webhook carries none that can be stored: the type is
    /// optional, so a webhook without one is accepted all the same.
    pub fn extract(&self, headers: &HeaderMap, body: &[u8]) -> Option<String> {
        let found = match self {
            Self::Header(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string()),
            Self::JsonPointer(pointer) => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                value.pointer(pointer)?.as_str().map(str::to_string)
            }
        };
        found.filter(|t| !t.is_empty() && t.len() <= MAX_LEN && !t.contains('\0'))
    }
}

/// One entry of a destination's `events`: a type, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    Exact(String),
    Prefix(String),
}

impl EventPattern {
    /// Parses an `events` entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (head, star) = match text.strip_suffix('*') {
            Some(head) => (head, true),
            None => (text, false),
        };
        if text.is_empty() {
            return Err("must not be empty");
        }
        if head.contains('*') {
            return Err("'*' may only end an entry");
        }
        Ok(match star {
            true => Self::Prefix(head.to_string()),
            false => Self::Exact(head.to_string()),
        })
    }

    /// A webhook without a type is matched only by `"*"`, which stands for every event.
    pub fn matches(&self, event_type: Option<&str>) -> bool {
        match (self, event_type) {
            (Self::Prefix(head), _) if head.is_empty() => true,
            (_, None) => false,
            (Self::Exact(t), Some(event_type)) => t == event_type,
            (Self::Prefix(head), Some(event_type)) => event_type.starts_with(head.as_str()),
        }
    }

    /// The type this entry names exactly, if it is not a prefix.
    pub fn exact(&self) -> Option<&str> {
        match self {
            Self::Exact(t) => Some(t),
            Self::Prefix(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rule_trims_and_skips_empty() {
        let rule = EventTypeRule::header("X-GitHub-Event");
        let mut h = HeaderMap::new();
        assert_eq!(rule.extract(&h, b""), None);
        h.insert("x-github-event", " push ".parse().unwrap());
        assert_eq!(rule.extract(&h, b""), Some("push".into()));
        h.insert("x-github-event", "".parse().unwrap());
        assert_eq!(rule.extract(&h, b""), None);
    }

    #[test]
    fn pointer_rule_takes_only_strings() {
        let rule = EventTypeRule::json_pointer("/event/type");
        let none = HeaderMap::new();
        let body = br#"{"event":{"type":"app_mention"}}"#;
        assert_eq!(rule.extract(&none, body), Some("app_mention".into()));
        for body in [
            &br#"{"event":{"type":7}}"#[..],
            br#"{"event":{}}"#,
            b"not json",
            br#"{"event":{"type":"a\u0000b"}}"#,
        ] {
            assert_eq!(rule.extract(&none, body), None);
        }
        let long = format!(r#"{{"event":{{"type":"{}"}}}}"#, "a".repeat(MAX_LEN + 1));
        assert_eq!(rule.extract(&none, long.as_bytes()), None);
    }

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        let push = EventPattern::parse("push").unwrap();
        assert!(push.matches(Some("push")));
        assert!(!push.matches(Some("push.x")));
        assert!(!push.matches(None));
        let invoice = EventPattern::parse("invoice.*").unwrap();
        assert!(invoice.matches(Some("invoice.paid")));
        assert!(invoice.matches(Some("invoice.")));
        assert!(!invoice.matches(Some("invoices")));
        assert!(!invoice.matches(None));
        let all = EventPattern::parse("*").unwrap();
        assert!(all.matches(Some("anything")));
        assert!(all.matches(None));
    }

    #[test]
    fn stars_only_end_a_pattern() {
        assert!(EventPattern::parse("").is_err());
        assert!(EventPattern::parse("in*voice").is_err());
        assert!(EventPattern::parse("**").is_err());
        assert_eq!(EventPattern::parse("push").unwrap().exact(), Some("push"));
        assert_eq!(EventPattern::parse("push*").unwrap().exact(), None);
    }
}
