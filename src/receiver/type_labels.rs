//! The `event_type` label of `hookgate_webhooks_received_total`, bounded: the type comes from
//! the sender, and every distinct label value is a time series kept for the life of the
//! process.

use crate::config::Config;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Distinct types per source labelled as themselves beyond those the configuration names.
pub const FIRST_TYPES: usize = 50;
/// The label of a webhook without a type, or refused before its type was read.
pub const NONE: &str = "none";
/// The label of a type beyond the bound.
pub const OTHER: &str = "other";

pub struct TypeLabels {
    /// Per source, the types its destinations' `events` name exactly: always their own label.
    named: HashMap<String, HashSet<String>>,
    /// Per source, the first [`FIRST_TYPES`] other types seen.
    seen: Mutex<HashMap<String, HashSet<String>>>,
}

impl TypeLabels {
    pub fn new(config: &Config) -> Self {
        let named = (config.sources.iter())
            .map(|s| {
                let types = (s.destinations.iter())
                    .flat_map(|d| d.selector.events.iter().flatten())
                    .filter_map(|p| p.exact().map(str::to_string))
                    .collect();
                (s.name.clone(), types)
            })
            .collect();
        Self {
            named,
            seen: Mutex::default(),
        }
    }

    pub fn label(&self, source: &str, event_type: Option<&str>) -> String {
        let Some(event_type) = event_type else {
            return NONE.to_string();
        };
        if self
            .named
            .get(source)
            .is_some_and(|n| n.contains(event_type))
        {
            return event_type.to_string();
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let types = seen.entry(source.to_string()).or_default();
        if types.contains(event_type) || types.len() < FIRST_TYPES {
            types.insert(event_type.to_string());
            return event_type.to_string();
        }
        OTHER.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_types_always_then_the_first_few_then_other() {
        let labels = TypeLabels {
            named: [("gh".to_string(), ["push".to_string()].into())].into(),
            seen: Mutex::default(),
        };
        for n in 0..FIRST_TYPES {
            assert_eq!(labels.label("gh", Some(&format!("t{n}"))), format!("t{n}"));
        }
        assert_eq!(labels.label("gh", Some("late")), OTHER);
        assert_eq!(labels.label("gh", Some("t0")), "t0");
        assert_eq!(labels.label("gh", Some("push")), "push");
        assert_eq!(labels.label("gh", None), NONE);
        assert_eq!(labels.label("other-source", Some("late")), "late");
    }
}
