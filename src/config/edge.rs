//! `[edge]`: what one client, or many, may hold of the receiver: time per request phase,
//! connections, and memory and queue room for webhooks not yet stored.

use super::units;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeConfig {
    /// A request head must have arrived this long after the connection opened, or after the
    /// first byte of a later request on a kept-alive connection.
    pub header_timeout: Duration,
    /// A request body must have arrived this long after its head.
    pub body_timeout: Duration,
    /// A kept-alive connection may wait this long for the first byte of its next request.
    pub idle_timeout: Duration,
    /// Open connections on the public listener; more wait in the kernel's accept queue.
    /// `None`: as many as the open-file limit leaves room for, up to
    /// [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// Bytes of webhook bodies held at once, from reading until their batch is stored.
    pub ingest_memory: usize,
    /// Webhooks waiting for a batch insert; beyond it requests are refused at once.
    pub ingest_queue: usize,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            ingest_memory: 256 << 20,
            ingest_queue: 4096,
        }
    }
}

/// The public listener's cap when `max_connections` is not set and the open-file limit allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Beyond these the numbers stop being budgets.
const MAX_CONNECTIONS: usize = 1_000_000;
const MAX_QUEUE: usize = 1_000_000;
const MAX_MEMORY: usize = 1 << 40;

#[derive(Deserialize, Default)]
pub(super) struct RawEdge {
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    ingest_memory: Option<String>,
    ingest_queue: Option<usize>,
}

impl RawEdge {
    /// `largest_body` is the largest `max_body` of any source, with the source's name: a
    /// budget below it would refuse that source's largest webhooks forever.
    pub(super) fn validate(
        self,
        largest_body: Option<(&str, usize)>,
        problems: &mut Vec<String>,
    ) -> EdgeConfig {
        let d = EdgeConfig::default();
        let mut duration = |name: &str, value: Option<String>, default: Duration| {
            let Some(text) = value else {
                return default;
            };
            let key = format!("edge.{name}");
            match units::duration(&key, &text) {
                Ok(parsed) if parsed.is_zero() => {
                    problems.push(format!("{key}: must be above 0"));
                    default
                }
                Ok(parsed) => parsed,
                Err(problem) => {
                    problems.push(problem);
                    default
                }
            }
        };
        let header_timeout = duration("header_timeout", self.header_timeout, d.header_timeout);
        let body_timeout = duration("body_timeout", self.body_timeout, d.body_timeout);
        let idle_timeout = duration("idle_timeout", self.idle_timeout, d.idle_timeout);
        let ingest_memory = match self.ingest_memory {
            Some(text) => units::size("edge.ingest_memory", &text)
                .map_err(|p| problems.push(p))
                .unwrap_or(d.ingest_memory),
            None => d.ingest_memory,
        };
        let edge = EdgeConfig {
            header_timeout,
            body_timeout,
            idle_timeout,
            max_connections: self.max_connections,
            ingest_memory,
            ingest_queue: self.ingest_queue.unwrap_or(d.ingest_queue),
        };
        if edge
            .max_connections
            .is_some_and(|n| !(1..=MAX_CONNECTIONS).contains(&n))
        {
            problems.push(format!(
                "edge.max_connections: must be between 1 and {MAX_CONNECTIONS}"
            ));
        }
        if !(1..=MAX_QUEUE).contains(&edge.ingest_queue) {
            problems.push(format!(
                "edge.ingest_queue: must be between 1 and {MAX_QUEUE}"
            ));
        }
        if edge.ingest_memory > MAX_MEMORY {
            problems.push("edge.ingest_memory: must be at most 1TiB".to_string());
        }
        if let Some((source, largest)) = largest_body
            && edge.ingest_memory < largest
        {
            problems.push(format!(
                "edge.ingest_memory: must be at least the max_body of source {source:?} ({largest} bytes), or its largest webhooks are always refused"
            ));
        }
        edge
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn parse(edge: &str) -> Result<Config, ConfigError> {
        let text = format!(
            r#"
            database_url = "postgres://127.0.0.1/hookgate"
            redis_url = "redis://127.0.0.1"
            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["x"]
            [[sources]]
            name = "small"
            provider = "github"
            secrets = ["x"]
            max_body = "1KiB"
            {edge}
            "#
        );
        Config::parse("test.toml", &text, &|_| None)
    }

    #[test]
    fn without_an_edge_table_the_defaults_hold() {
        assert_eq!(parse("").unwrap().edge, EdgeConfig::default());
    }

    #[test]
    fn every_edge_key_is_read() {
        let edge = parse(
            r#"[edge]
            header_timeout = "2s"
            body_timeout = "5s"
            idle_timeout = "90s"
            max_connections = 100
            ingest_memory = "64MiB"
            ingest_queue = 10"#,
        )
        .unwrap()
        .edge;
        assert_eq!(
            edge,
            EdgeConfig {
                header_timeout: Duration::from_secs(2),
                body_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(90),
                max_connections: Some(100),
                ingest_memory: 64 << 20,
                ingest_queue: 10,
            }
        );
    }

    #[test]
    fn edge_problems_are_listed_together() {
        let Err(ConfigError::Invalid { problems, .. }) = parse(
            r#"[edge]
            header_timeout = "0s"
            body_timeout = "soon"
            max_connections = 0
            ingest_memory = "1MiB"
            ingest_queue = 0"#,
        ) else {
            panic!("expected an invalid config");
        };
        let expected = [
            "edge.header_timeout: must be above 0",
            "edge.body_timeout: \"soon\" is not a duration",
            "edge.max_connections: must be between 1 and",
            "edge.ingest_queue: must be between 1 and",
            "edge.ingest_memory: must be at least the max_body of source \"gh\" (26214400 bytes)",
        ];
        for e in expected {
            assert!(
                problems.iter().any(|p| p.message.starts_with(e)),
                "missing {e:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }
}
