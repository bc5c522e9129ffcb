//! Which of a source's destinations an event goes to: a destination's `events` and `filter`.

use crate::event_type::EventPattern;
use serde_json::Value;
use std::cell::OnceCell;

/// What a destination takes; the default takes every event of its source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    /// `None`: every type, and webhooks without one.
    pub events: Option<Vec<EventPattern>>,
    pub filter: Option<BodyFilter>,
}

/// `filter = { json_pointer = "...", equals = <value> }`.
#[derive(Debug, Clone, PartialEq)]
pub struct BodyFilter {
    pub json_pointer: String,
    pub equals: Value,
}

/// An event as routing sees it; the body is parsed once, and only if a filter asks.
pub struct Routed<'a> {
    event_type: Option<&'a str>,
    body: &'a [u8],
    json: OnceCell<Option<Value>>,
}

impl<'a> Routed<'a> {
    pub fn new(event_type: Option<&'a str>, body: &'a [u8]) -> Self {
        Self {
            event_type,
            body,
            json: OnceCell::new(),
        }
    }

    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.body).ok())
            .as_ref()
    }
}

impl Selector {
    pub fn accepts(&self, event: &Routed) -> bool {
        let typed = (self.events.as_ref())
            .is_none_or(|events| events.iter().any(|p| p.matches(event.event_type)));
        typed && self.filter.as_ref().is_none_or(|f| f.accepts(event))
    }
}

impl BodyFilter {
    /// A body that is not JSON, or lacks the pointer, does not match.
    fn accepts(&self, event: &Routed) -> bool {
        (event.json()).and_then(|v| v.pointer(&self.json_pointer)) == Some(&self.equals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(events: Option<&[&str]>, filter: Option<(&str, Value)>) -> Selector {
        Selector {
            events: events.map(|e| e.iter().map(|p| EventPattern::parse(p).unwrap()).collect()),
            filter: filter.map(|(p, v)| BodyFilter {
                json_pointer: p.into(),
                equals: v,
            }),
        }
    }

    #[test]
    fn no_selector_takes_everything() {
        let all = Selector::default();
        assert!(all.accepts(&Routed::new(None, b"not json")));
        assert!(all.accepts(&Routed::new(Some("push"), b"{}")));
    }

    #[test]
    fn events_and_filter_must_both_match() {
        let s = selector(
            Some(&["push", "invoice.*"]),
            Some(("/data/object/livemode", json!(true))),
        );
        let live = br#"{"data":{"object":{"livemode":true}}}"#;
        let test = br#"{"data":{"object":{"livemode":false}}}"#;
        assert!(s.accepts(&Routed::new(Some("invoice.paid"), live)));
        assert!(!s.accepts(&Routed::new(Some("invoice.paid"), test)));
        assert!(!s.accepts(&Routed::new(Some("charge.failed"), live)));
        assert!(!s.accepts(&Routed::new(None, live)));
        assert!(!s.accepts(&Routed::new(Some("push"), b"not json")));
        assert!(!s.accepts(&Routed::new(Some("push"), b"{}")));
    }

    #[test]
    fn filters_compare_any_json_value() {
        let s = selector(None, Some(("/a", json!({"b": [1, "x"]}))));
        assert!(s.accepts(&Routed::new(None, br#"{"a":{"b":[1,"x"]}}"#)));
        assert!(!s.accepts(&Routed::new(None, br#"{"a":{"b":[1]}}"#)));
        let null = selector(None, Some(("/a", Value::Null)));
        assert!(null.accepts(&Routed::new(None, br#"{"a":null}"#)));
        assert!(!null.accepts(&Routed::new(None, br#"{}"#)));
    }
}
