//! One TOML file, `${ENV}` interpolation, `HOOKGATE_*_URL` overrides, validated once at start
//! with every problem listed. Nothing after this module parses a duration or a size.

mod admin;
mod delivery;
mod edge;
mod ingress;
mod interpolate;
mod locate;
mod redis_url;
mod retention;
mod shape;
mod source;
mod throttle;
mod tls;
mod units;

pub use admin::{AdminToken, CLI_ACTOR_PREFIX, Scope};
pub use delivery::{Breaker, Destination, RetryPolicy, Target, WorkerConfig};
pub use edge::{DEFAULT_MAX_CONNECTIONS, EdgeConfig};
pub use ingress::Ingress;
pub use locate::{Location, Problem};
pub use redis_url::RedisUrl;
pub use retention::Retention;
pub use source::{Provider, Source};
pub use throttle::Throttle;
pub use units::Rate;

use crate::tls::TlsSettings;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

pub const DATABASE_URL_ENV: &str = "HOOKGATE_DATABASE_URL";
pub const REDIS_URL_ENV: &str = "HOOKGATE_REDIS_URL";

#[derive(Debug)]
pub struct Config {
    /// Public listener: webhooks and health only.
    pub listen: SocketAddr,
    /// Private listener: metrics (and the admin API).
    pub admin_listen: SocketAddr,
    pub database_url: String,
    pub database_pool_size: u32,
    pub redis_url: RedisUrl,
    /// First part of every Redis key, so deployments (and tests) can share one Redis.
    pub stream_prefix: String,
    pub worker: WorkerConfig,
    pub edge: EdgeConfig,
    /// Bearer tokens for the admin API.
    pub admin_tokens: Vec<AdminToken>,
    /// Whether `/metrics` needs a token with the read scope (default: open, like most
    /// Prometheus targets on a private listener).
    pub metrics_need_token: bool,
    /// Where dead-letter alerts are POSTed, besides the log and the metric.
    pub alert_webhook_url: Option<String>,
    /// What the alert client trusts: the public roots, plus `alert_ca_file` if set.
    pub alert_tls: TlsSettings,
    /// How long settled events and dead letters are kept.
    pub retention: Retention,
    pub sources: Vec<Source>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The text is not TOML at all; the message says where toml's parser stopped.
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    /// Valid TOML, but not a valid configuration: every problem found, each with its place.
    #[error("{path} is invalid ({} problem{}):\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.iter().map(|p| format!("  {path}: {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

/// Unknown keys are refused (a typo must not silently disable something), but found by
/// [`shape::read`] rather than `deny_unknown_fields`, so that all of them are reported.
#[derive(Deserialize)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    database_url: Option<String>,
    database_pool_size: Option<u32>,
    redis_url: Option<redis_url::RawRedisUrl>,
    stream_prefix: Option<String>,
    retry: Option<delivery::RawRetry>,
    worker: Option<delivery::RawWorker>,
    edge: Option<edge::RawEdge>,
    #[serde(default)]
    admin_tokens: Vec<admin::RawAdminToken>,
    #[serde(default)]
    metrics_need_token: bool,
    alert_webhook_url: Option<String>,
    alert_ca_file: Option<String>,
    retention: Option<String>,
    dead_letter_retention: Option<String>,
    retention_interval: Option<String>,
    #[serde(default)]
    sources: Vec<source::RawSource>,
}

impl Config {
    /// Reads `path`, taking `${NAME}` values and overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text, &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parses `text` (named `path` in messages) with `env` standing in for the environment.
    pub fn parse(
        path: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let syntax = |e: toml::de::Error| ConfigError::Syntax {
            path: path.to_string(),
            message: e.to_string().trim_end().to_string(),
        };
        // Parsed twice: the spanned document only to say where problems are, the value to
        // interpolate and read.
        let document = toml::de::DeTable::parse(text).map_err(syntax)?;
        let mut value: toml::Value = toml::from_str(text).map_err(syntax)?;
        let mut problems = Vec::new();
        interpolate::interpolate(&mut value, env, &mut problems);
        let config = shape::read::<RawConfig>(value, &mut problems)
            .and_then(|raw| raw.validate(env, &mut problems));
        if let (Some(config), true) = (config, problems.is_empty()) {
            return Ok(config);
        }
        let mut problems: Vec<Problem> = problems
            .into_iter()
            .map(|message| Problem {
                location: locate::locate(text, &document, &message),
                message,
            })
            .collect();
        // In the file's order, after those about keys the file lacks.
        problems.sort_by_key(|p| p.location.map(|at| (at.line, at.column)));
        Err(ConfigError::Invalid {
            path: path.to_string(),
            problems,
        })
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
}

impl RawConfig {
    fn validate(
        self,
        env: &dyn Fn(&str) -> Option<String>,
        problems: &mut Vec<String>,
    ) -> Option<Config> {
        let mut address = |key: &str, value: Option<String>, default: &str| {
            let text = value.unwrap_or_else(|| default.to_string());
            text.parse::<SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "{key}: {text:?} is not an address like \"0.0.0.0:8080\""
                    ))
                })
                .ok()
        };
        let listen = address("listen", self.listen, "0.0.0.0:8080");
        let admin_listen = address("admin_listen", self.admin_listen, "127.0.0.1:8081");

        let mut url = |key: &str, env_name: &str, value: Option<String>, schemes: &[&str]| {
            let Some(url) = env(env_name).filter(|v| !v.is_empty()).or(value) else {
                problems.push(format!("{key}: required (or set {env_name})"));
                return None;
            };
            if !schemes.iter().any(|s| url.starts_with(&format!("{s}://"))) {
                problems.push(format!(
                    "{key}: must start with {}://",
                    schemes.join("://, ")
                ));
                return None;
            }
            Some(url)
        };
        let database_url = url(
            "database_url",
            DATABASE_URL_ENV,
            self.database_url,
            &["postgres", "postgresql"],
        );
        let redis_url =
            RedisUrl::validate(self.redis_url, REDIS_URL_ENV, env(REDIS_URL_ENV), problems);

        let alert_https = match &self.alert_webhook_url {
            Some(url) if url.starts_with("https://") => true,
            Some(url) if url.starts_with("http://") => false,
            Some(url) => {
                problems.push(format!(
                    "alert_webhook_url: {url:?} must start with http:// or https://"
                ));
                false
            }
            None => false,
        };
        let alert_ca = match &self.alert_ca_file {
            Some(_) if !alert_https => {
                problems.push("alert_ca_file: only for an https:// alert_webhook_url".to_string());
                None
            }
            Some(path) => tls::private_ca("alert_ca_file", path, problems),
            None => None,
        };
        let database_pool_size = self.database_pool_size.unwrap_or(16);
        if !(1..=1000).contains(&database_pool_size) {
            problems.push("database_pool_size: must be between 1 and 1000".to_string());
        }
        let stream_prefix = self.stream_prefix.unwrap_or_else(|| "hookgate".to_string());
        if stream_prefix.is_empty() || stream_prefix.contains(['{', '}', ' ']) {
            problems.push(format!(
                "stream_prefix: {stream_prefix:?} must be non-empty, without braces or spaces"
            ));
        }

        if self.sources.is_empty() {
            problems.push("sources: at least one [[sources]] entry is required".to_string());
        }
        let worker = self.worker.unwrap_or_default().validate(problems);
        let mut admin_tokens: Vec<AdminToken> = Vec::new();
        for (i, raw) in self.admin_tokens.into_iter().enumerate() {
            let key = format!("admin_tokens[{i}]");
            if let Some(token) = raw.validate(&key, problems) {
                if admin_tokens.iter().any(|t| t.name == token.name) {
                    problems.push(format!("{key}.name: {:?} is used twice", token.name));
                }
                admin_tokens.push(token);
            }
        }
        let retry = self.retry.unwrap_or_default();
        retry.validate("retry", problems);
        let retention = Retention::validate(
            self.retention.as_deref(),
            self.dead_letter_retention.as_deref(),
            self.retention_interval.as_deref(),
            problems,
        );
        let mut names = HashSet::new();
        let mut sources = Vec::new();
        for (i, raw) in self.sources.into_iter().enumerate() {
            if let Some(source) = raw.validate(i, &retry, &worker, problems) {
                if !names.insert(source.name.clone()) {
                    problems.push(format!(
                        "sources[{i}].name: {:?} is used twice",
                        source.name
                    ));
                }
                sources.push(source);
            }
        }
        let largest_body = sources
            .iter()
            .max_by_key(|s| s.max_body)
            .map(|s| (s.name.as_str(), s.max_body));
        let edge = self
            .edge
            .unwrap_or_default()
            .validate(largest_body, problems);
        Some(Config {
            listen: listen?,
            admin_listen: admin_listen?,
            database_url: database_url?,
            database_pool_size,
            redis_url: redis_url?,
            stream_prefix,
            worker,
            edge,
            admin_tokens,
            metrics_need_token: self.metrics_need_token,
            alert_webhook_url: self.alert_webhook_url,
            alert_tls: TlsSettings {
                ca: alert_ca,
                client_certificate: None,
            },
            retention,
            sources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "STRIPE_SECRET" => Some("whsec_abc".into()),
            "DB_FROM_ENV" => Some("postgres://env/db".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse("test.toml", text, &env)
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.into_iter().map(|p| p.message).collect()
            }
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    const BASE: &str = r#"
        database_url = "postgres://127.0.0.1/hookgate"
        redis_url = "redis://127.0.0.1"
    "#;

    #[test]
    fn a_full_config_parses_with_presets_and_defaults() {
        let config = parse(&format!(
            r#"{BASE}
            [[sources]]
            name = "stripe"
            provider = "stripe"
            secrets = ["${{STRIPE_SECRET}}"]

            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["a", "b"]

            [[sources]]
            name = "custom"
            provider = "hmac"
            secrets = ["s"]
            signature_header = "X-Sig"
            algorithm = "sha512"
            encoding = "base64"
            prefix = "v1="
            signed_content = "{{timestamp}}.{{body}}"
            timestamp_header = "X-Ts"
            tolerance = "1m"
            max_body = "2MiB"
            event_id = {{ json_pointer = "/data/id", body_sha256 = true }}
        "#
        ))
        .unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.admin_listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(config.stream_prefix, "hookgate");
        let stripe = config.source("stripe").unwrap();
        assert_eq!(stripe.max_body, 1 << 20);
        assert_eq!(
            stripe.event_id,
            crate::event_id::EventIdRule::json_pointer("/id")
        );
        assert_eq!(config.source("gh").unwrap().max_body, 25 << 20);
        let custom = config.source("custom").unwrap();
        assert_eq!(custom.max_body, 2 << 20);
        assert!(custom.event_id.fallback_body_sha256);
    }

    #[test]
    fn environment_overrides_the_file_urls() {
        let config = Config::parse(
            "t",
            &format!(
                r#"{BASE}
                [[sources]]
                name = "s"
                provider = "github"
                secrets = ["x"]"#
            ),
            &|name| (name == DATABASE_URL_ENV).then(|| "postgres://override/db".to_string()),
        )
        .unwrap();
        assert_eq!(config.database_url, "postgres://override/db");
        assert_eq!(config.redis_url, RedisUrl::Node("redis://127.0.0.1".into()));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let found = problems(
            r#"
            listen = "nowhere"
            [[sources]]
            name = "Bad Name"
            provider = "stripe"
            secrets = ["${UNSET_SECRET}"]
            max_body = "huge"
            tolerance = "later"

            [[sources]]
            name = "std"
            provider = "standard"
            secrets = ["whsec_not base64!"]

            [[sources]]
            name = "gh"
            provider = "github"
            secrets = []
            tolerance = "5m"
            signature_header = "X-Other"

            [[sources]]
            name = "x"
            provider = "paypal"
            secrets = ["s"]

            [[sources]]
            name = "h"
            provider = "hmac"
            secrets = ["s"]
            algorithm = "md5"
            signed_content = "{timestamp}:{body}"
            event_id = { header = "X-Id", json_pointer = "/id" }
        "#,
        );
        let expected = [
            "sources[0].secrets[0]: environment variable UNSET_SECRET is not set",
            "listen: \"nowhere\" is not an address",
            "database_url: required (or set HOOKGATE_DATABASE_URL)",
            "redis_url: required (or set HOOKGATE_REDIS_URL)",
            "sources[0].name: \"Bad Name\" must be",
            "sources[0].max_body: \"huge\" is not a size",
            "sources[0].tolerance: \"later\" is not a duration",
            "sources[1].secrets: a Standard Webhooks secret must be whsec_",
            "sources[2].secrets: at least one secret is required",
            "sources[2].signature_header: only for provider = \"hmac\"",
            "sources[2].tolerance: \"github\" signatures carry no timestamp",
            "sources[3].provider: unknown provider \"paypal\"",
            "sources[4].event_id: set header or json_pointer, not both",
        ];
        for e in expected {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn generic_hmac_problems() {
        let found = problems(&format!(
            r#"{BASE}
            [[sources]]
            name = "h"
            provider = "hmac"
            secrets = ["s"]
            algorithm = "md5"
            encoding = "base32"
            signed_content = "{{id}}.{{timestamp}}:{{body}}"
        "#
        ));
        let expected = [
            "sources[0].signature_header: required",
            "sources[0].algorithm: \"md5\"",
            "sources[0].encoding: \"base32\"",
            "sources[0].timestamp_header: set it exactly when",
            "sources[0].signed_content: {id} needs event_id.header",
        ];
        for e in expected {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_duplicate_names_are_refused() {
        assert_eq!(
            problems(&format!(
                "listen_addr = \"x\"\n{BASE}\n[[sources]]\nname = \"a\"\nprovider = \"github\"\nsecrets = [\"x\"]"
            )),
            vec!["listen_addr: unknown key"]
        );
        let found = problems(&format!(
            r#"{BASE}
            [[sources]]
            name = "a"
            provider = "github"
            secrets = ["x"]
            [[sources]]
            name = "a"
            provider = "shopify"
            secrets = ["y"]
        "#
        ));
        assert_eq!(found, vec!["sources[1].name: \"a\" is used twice"]);
    }

    fn located(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn every_typo_and_wrong_type_is_listed_with_its_line_and_column() {
        let found = located(
            r#"database_url = "postgres://127.0.0.1/hookgate"
redis_url = "redis://127.0.0.1"
listen_adress = "0.0.0.0:8080"
[retry]
max_atempts = 3
initial_delay = 5
[[sources]]
name = "gh"
provider = "github"
secret = ["x"]
  [[sources.destinations]]
  name = "ci"
  url = "http://ci.internal/"
  timeout = "2m"
"#,
        );
        assert_eq!(
            found,
            vec![
                "line 3, column 1: listen_adress: unknown key",
                "line 5, column 1: retry.max_atempts: unknown key",
                "line 6, column 1: retry.initial_delay: invalid type: integer `5`, expected a string",
                "line 7, column 1: sources[0].secrets: at least one secret is required (webhooks are never accepted unverified)",
                "line 10, column 1: sources[0].secret: unknown key",
                "line 14, column 3: sources[0].destinations[0].timeout: must be below worker.visibility_timeout (60s), or a slow delivery would be taken over while it runs",
            ],
        );
    }

    #[test]
    fn only_text_that_is_not_toml_is_called_not_valid_toml() {
        let error = parse("listen = \"0.0.0.0:8080\"\nsources = [\n").unwrap_err();
        let ConfigError::Syntax { message, .. } = &error else {
            panic!("expected a syntax error, got {error:?}");
        };
        assert!(message.contains("line 2, column 12"), "{message}");
        let error = parse(&format!("{BASE}\nlisten = 8080")).unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
        assert!(!error.to_string().contains("not valid TOML"), "{error}");
    }

    #[test]
    fn a_missing_required_key_stops_the_reading_but_is_reported_with_the_rest() {
        let found = located(&format!(
            r#"{BASE}
            [[sources]]
            provider = "github"
            secrets = ["x"]
            colour = "blue"
            "#
        ));
        assert_eq!(
            found,
            vec![
                "line 5, column 13: sources[0]: missing field `name`",
                "line 8, column 13: sources[0].colour: unknown key",
            ],
        );
    }

    #[test]
    fn destinations_and_retry_policies() {
        let config = parse(&format!(
            r#"{BASE}
            [retry]
            max_attempts = 3
            initial_delay = "1s"

            [worker]
            concurrency = 4
            visibility_timeout = "30s"

            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["x"]
            retry = {{ max_attempts = 5 }}

              [[sources.destinations]]
              name = "ci"
              url = "http://127.0.0.1:9000/hook"
              timeout = "2s"
              secret = "whsec_c2VjcmV0"
              headers = {{ "X-Team" = "builds" }}

              [[sources.destinations]]
              name = "audit"
              stream = "audit-events"
            "#
        ))
        .unwrap();
        assert_eq!(config.worker.concurrency, 4);
        let gh = config.source("gh").unwrap();
        assert_eq!(gh.retry.max_attempts, 5, "source overrides global");
        assert_eq!(
            gh.retry.initial_delay,
            std::time::Duration::from_secs(1),
            "global overrides default"
        );
        assert_eq!(
            gh.retry.max_delay,
            std::time::Duration::from_secs(3600),
            "default"
        );
        let ci = gh.destination("ci").unwrap();
        assert!(ci.signing_key.is_some());
        assert_eq!(ci.headers.len(), 1);
        assert!(matches!(ci.target, Target::Http { .. }));
        assert_eq!(
            gh.destination("audit").unwrap().target,
            Target::Stream {
                key: "audit-events".into(),
                max_len: 100_000,
            }
        );
    }

    #[test]
    fn destination_problems() {
        let found = problems(&format!(
            r#"{BASE}
            [retry]
            jitter = 2.0
            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["x"]
              [[sources.destinations]]
              name = "a"
              url = "ftp://example.invalid/"
              [[sources.destinations]]
              name = "b"
              url = "http://x/"
              stream = "s"
              [[sources.destinations]]
              name = "c"
              url = "http://x/"
              timeout = "2m"
              secret = "whsec_!!"
            "#
        ));
        let expected = [
            "retry.jitter: must be between 0 and 1",
            "sources[0].destinations[0].url: \"ftp://example.invalid/\" must start with http:// or https://",
            "sources[0].destinations[1]: set exactly one of url or stream",
            "sources[0].destinations[2].timeout: must be below worker.visibility_timeout",
            "sources[0].destinations[2].secret: a Standard Webhooks secret",
        ];
        for e in expected {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn stream_bounds_are_validated() {
        let found = problems(&format!(
            r#"{BASE}
            [worker]
            consumer_idle_limit = "0s"
            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["x"]
              [[sources.destinations]]
              name = "a"
              stream = "s"
              max_len = 0
              [[sources.destinations]]
              name = "b"
              url = "http://x/"
              max_len = 10
            "#
        ));
        let expected = [
            "worker: schedule_interval, visibility_timeout and consumer_idle_limit must be above zero",
            "sources[0].destinations[0].max_len: must be at least 1",
            "sources[0].destinations[1].max_len: is for stream destinations",
        ];
        for e in expected {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn admin_tokens_are_validated() {
        let found = problems(&format!(
            r#"{BASE}
            [[admin_tokens]]
            name = "short"
            token = "abc"
            scopes = ["read"]
            [[admin_tokens]]
            name = "odd"
            token = "0123456789abcdef"
            scopes = ["replay", "delete"]
            [[admin_tokens]]
            name = "cli:alice"
            token = "0123456789abcdef-alice"
            scopes = ["read"]
            [[sources]]
            name = "s"
            provider = "github"
            secrets = ["x"]
            "#
        ));
        for e in [
            "admin_tokens[0].token: must be at least 16 characters",
            "admin_tokens[1].scopes: unknown scope \"delete\"",
            "admin_tokens[1].scopes: \"replay\" needs \"read\" too",
            "admin_tokens[2].name: \"cli:alice\" must not start with \"cli:\"",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn alert_settings_are_validated() {
        let found = problems(&format!(
            r#"alert_webhook_url = "ftp://alerts.example/hook"
            {BASE}
            [[sources]]
            name = "s"
            provider = "github"
            secrets = ["x"]
            dead_letter_alert = 0
            "#
        ));
        for e in [
            "alert_webhook_url: \"ftp://alerts.example/hook\" must start with http:// or https://",
            "sources[0].dead_letter_alert: must be at least 1",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn event_types_and_destination_selectors() {
        let config = parse(&format!(
            r#"{BASE}
            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["x"]
            [[sources.destinations]]
            name = "ci"
            url = "http://ci.internal/hook"
            events = ["push", "pull_request*"]
            filter = {{ json_pointer = "/repository/private", equals = true }}

            [[sources]]
            name = "h"
            provider = "hmac"
            secrets = ["s"]
            signature_header = "X-Sig"
            event_type = {{ json_pointer = "/kind" }}
        "#
        ))
        .unwrap();
        let gh = config.source("gh").unwrap();
        assert_eq!(
            gh.event_type,
            Some(crate::event_type::EventTypeRule::header("X-GitHub-Event"))
        );
        let selector = &gh.destination("ci").unwrap().selector;
        assert_eq!(selector.events.as_ref().unwrap().len(), 2);
        assert_eq!(
            selector.filter.as_ref().unwrap().equals,
            serde_json::Value::Bool(true)
        );
        assert_eq!(
            config.source("h").unwrap().event_type,
            Some(crate::event_type::EventTypeRule::json_pointer("/kind"))
        );
    }

    #[test]
    fn event_type_and_selector_problems() {
        let found = problems(&format!(
            r#"{BASE}
            [[sources]]
            name = "gh"
            provider = "github"
            secrets = ["x"]
            event_type = {{ header = "X-Type" }}
            [[sources.destinations]]
            name = "a"
            url = "http://a.internal/"
            events = []
            [[sources.destinations]]
            name = "b"
            url = "http://b.internal/"
            events = ["", "in*voice", "ok.*"]
            filter = {{ json_pointer = "data/livemode", equals = true }}

            [[sources]]
            name = "h"
            provider = "hmac"
            secrets = ["s"]
            signature_header = "X-Sig"
            event_type = {{ header = "X-Type", json_pointer = "/type" }}

            [[sources]]
            name = "h2"
            provider = "hmac"
            secrets = ["s"]
            signature_header = "X-Sig"
            event_type = {{ json_pointer = "type" }}
        "#
        ));
        for e in [
            "sources[0].event_type: only for provider = \"hmac\"",
            "sources[0].destinations[0].events: lists no event type",
            "sources[0].destinations[1].events: \"\" must not be empty",
            "sources[0].destinations[1].events: \"in*voice\" '*' may only end an entry",
            "sources[0].destinations[1].filter.json_pointer: \"data/livemode\" must start with '/'",
            "sources[1].event_type: set header or json_pointer, exactly one",
            "sources[2].event_type.json_pointer: \"type\" must start with '/'",
        ] {
            assert!(
                found.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), 7, "{found:#?}");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let config = parse(&format!(
            r#"{BASE}
            [[sources]]
            name = "s"
            provider = "github"
            secrets = ["super-secret-value"]"#
        ))
        .unwrap();
        assert!(!format!("{config:?}").contains("super-secret-value"));
    }
}
