//! What claims and outcomes must know of each configured destination: its circuit breaker,
//! and whether its deliveries go one at a time, in order.

use super::breaker::Breakers;
use crate::config::Config;

#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub breakers: Breakers,
    /// The `ordered = true` destinations, as `source/destination` keys.
    pub ordered: Vec<String>,
}

impl Rules {
    pub fn new(config: &Config) -> Self {
        Self {
            breakers: Breakers::new(config),
            ordered: (config.sources.iter())
                .flat_map(|s| s.destinations.iter().map(move |d| (s, d)))
                .filter(|(_, d)| d.ordered)
                .map(|(s, d)| ordered_key(&s.name, &d.name))
                .collect(),
        }
    }
}

/// Names are of a-z, 0-9, '_' and '-', so the '/' cannot be part of one.
pub fn ordered_key(source: &str, destination: &str) -> String {
    format!("{source}/{destination}")
}
