//! `redis_url`: one Redis server, or the seed nodes of a Redis Cluster.

use serde::Deserialize;

const SCHEMES: [&str; 2] = ["redis://", "rediss://"];

/// Where the queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUrl {
    /// One server: `redis_url = "redis://host:6379"`.
    Node(String),
    /// A Redis Cluster, reached through any of these seed nodes, from which the client learns
    /// the others: `redis_url = ["redis://h1:7000", "redis://h2:7001"]`.
    Cluster(Vec<String>),
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        Self::Node(url)
    }
}

/// The key as written: a string, or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawRedisUrl {
    Node(String),
    Cluster(Vec<String>),
}

impl RedisUrl {
    /// As it may be shown: passwords and queries replaced by `***`, a cluster's seeds listed.
    pub fn redacted(&self) -> String {
        match self {
            Self::Node(url) => crate::redact::url(url),
            Self::Cluster(seeds) => {
                let seeds: Vec<String> = seeds.iter().map(|s| crate::redact::url(s)).collect();
                format!("cluster {}", seeds.join(", "))
            }
        }
    }

    /// `env_value` (the environment override) wins over `raw`: one URL is a server, several
    /// separated by commas a cluster's seeds. Every problem is pushed onto `problems`.
    pub(super) fn validate(
        raw: Option<RawRedisUrl>,
        env_name: &str,
        env_value: Option<String>,
        problems: &mut Vec<String>,
    ) -> Option<Self> {
        let url = match (env_value.filter(|v| !v.is_empty()), raw) {
            (Some(text), _) if text.contains(',') => {
                Self::Cluster(text.split(',').map(|s| s.trim().to_string()).collect())
            }
            (Some(text), _) => Self::Node(text),
            (None, Some(RawRedisUrl::Node(text))) => Self::Node(text),
            (None, Some(RawRedisUrl::Cluster(seeds))) => Self::Cluster(seeds),
            (None, None) => {
                problems.push(format!("redis_url: required (or set {env_name})"));
                return None;
            }
        };
        let urls = match &url {
            Self::Node(url) => std::slice::from_ref(url),
            Self::Cluster(seeds) if seeds.is_empty() => {
                problems.push("redis_url: a cluster needs at least one seed node".to_string());
                return None;
            }
            Self::Cluster(seeds) => seeds.as_slice(),
        };
        let scheme = |url: &String| SCHEMES.into_iter().find(|s| url.starts_with(s));
        if urls.iter().any(|u| scheme(u).is_none()) {
            problems.push("redis_url: must start with redis://, rediss://".to_string());
            return None;
        }
        if urls.iter().any(|u| scheme(u) != scheme(&urls[0])) {
            problems.push(
                "redis_url: a cluster's seed nodes must all use redis:// or all rediss://"
                    .to_string(),
            );
            return None;
        }
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::{RawRedisUrl, RedisUrl};

    fn validate(raw: Option<RawRedisUrl>, env: Option<&str>) -> Result<RedisUrl, Vec<String>> {
        let mut problems = Vec::new();
        let url = RedisUrl::validate(raw, "ENV", env.map(String::from), &mut problems);
        url.ok_or(problems)
    }

    fn seeds(urls: &[&str]) -> Vec<String> {
        urls.iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn a_list_names_a_cluster_and_a_string_one_server() {
        let node = RawRedisUrl::Node("redis://h:6379".into());
        assert_eq!(
            validate(Some(node), None),
            Ok(RedisUrl::Node("redis://h:6379".into()))
        );
        let cluster = RawRedisUrl::Cluster(seeds(&["redis://a:7000", "redis://b:7001"]));
        assert_eq!(
            validate(Some(cluster), None),
            Ok(RedisUrl::Cluster(seeds(&[
                "redis://a:7000",
                "redis://b:7001"
            ])))
        );
    }

    #[test]
    fn the_environment_names_a_cluster_with_commas() {
        let file = Some(RawRedisUrl::Node("redis://file".into()));
        assert_eq!(
            validate(file, Some("rediss://a:7000, rediss://b:7001")),
            Ok(RedisUrl::Cluster(seeds(&[
                "rediss://a:7000",
                "rediss://b:7001"
            ])))
        );
        assert_eq!(
            validate(None, Some("redis://env")),
            Ok(RedisUrl::Node("redis://env".into()))
        );
    }

    #[test]
    fn seeds_need_a_redis_scheme_and_one_of_them() {
        let problem = |raw, env| validate(raw, env).unwrap_err().join("\n");
        assert!(problem(Some(RawRedisUrl::Cluster(vec![])), None).contains("at least one seed"));
        let mixed = RawRedisUrl::Cluster(seeds(&["redis://a", "rediss://b"]));
        assert!(problem(Some(mixed), None).contains("all use redis://"));
        let http = RawRedisUrl::Cluster(seeds(&["redis://a", "http://b"]));
        assert!(problem(Some(http), None).contains("must start with redis://"));
        assert!(problem(None, None).contains("required (or set ENV)"));
    }
}
