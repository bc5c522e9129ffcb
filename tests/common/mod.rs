//! Test harness: real Postgres and Redis, each test isolated in its own schema and key prefix.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod admin;
pub mod browser;
pub mod cli;
pub mod cluster;
pub mod delivery;
pub mod procs;
pub mod proxy;
pub mod raw;
pub mod seed;
pub mod sign;
pub mod sink;
pub mod sse;
pub mod tls;
pub mod tokens;

use hookgate::app::{Gateway, Roles};
use hookgate::config::{Config, RedisUrl};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub fn base_database_url() -> String {
    std::env::var("HOOKGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("HOOKGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Postgres URL whose connections see only `schema` and carry it as their application name,
/// so the cleanup can find and end them.
pub fn url_with_schema(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}")
}

/// One test's private slice of the shared services.
pub struct TestEnv {
    pub schema: String,
    pub prefix: String,
    pub database_url: String,
    pub db: PgPool,
    pub redis: redis::aio::MultiplexedConnection,
}

impl TestEnv {
    pub async fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("hgt_{id}");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base_database_url())
            .await
            .expect("Postgres must be reachable: run tests through scripts/dev test");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let database_url = url_with_schema(&base_database_url(), &schema);
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url)
            .await
            .unwrap();
        let redis = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("Redis must be reachable: run tests through scripts/dev test");
        Self {
            schema,
            prefix: format!("hgt-{id}"),
            database_url,
            db,
            redis,
        }
    }

    /// A config listening on free loopback ports, with `sources` (TOML `[[sources]]` entries).
    pub fn config(&self, sources: &str) -> Config {
        self.config_with(&self.database_url, &redis_url(), sources)
    }

    pub fn config_with(&self, database_url: &str, redis_url: &str, sources: &str) -> Config {
        let text = self.config_text_with(database_url, &redis_url.to_string().into(), "", sources);
        Config::parse("test.toml", &text, &|_| None).unwrap()
    }

    /// Like [`TestEnv::config`], with Redis at `redis_url` (a cluster's seeds, say).
    pub fn config_on(&self, redis_url: &RedisUrl, sources: &str) -> Config {
        let text = self.config_text_with(&self.database_url, redis_url, "", sources);
        Config::parse("test.toml", &text, &|_| None).unwrap()
    }

    /// Like [`TestEnv::config`], with `settings` (top-level `key = value` lines such as
    /// `metrics_need_token = true`) placed before any table.
    pub fn config_with_settings(&self, settings: &str, sources: &str) -> Config {
        let url = redis_url().into();
        let text = self.config_text_with(&self.database_url, &url, settings, sources);
        Config::parse("test.toml", &text, &|_| None).unwrap()
    }

    /// The configuration file a test's gateway or binary runs with.
    pub fn config_text(&self, sources: &str) -> String {
        self.config_text_with(&self.database_url, &redis_url().into(), "", sources)
    }

    fn config_text_with(
        &self,
        database_url: &str,
        redis_url: &RedisUrl,
        settings: &str,
        sources: &str,
    ) -> String {
        let redis_url = match redis_url {
            RedisUrl::Node(url) => toml::Value::from(url.as_str()),
            RedisUrl::Cluster(seeds) => toml::Value::from(seeds.clone()),
        };
        format!(
            r#"
            listen = "127.0.0.1:0"
            admin_listen = "127.0.0.1:0"
            database_url = "{database_url}"
            redis_url = {redis_url}
            stream_prefix = "{}"
            {settings}
            {sources}
            "#,
            self.prefix
        )
    }

    pub async fn start(&self, sources: &str) -> Running {
        Running::start(self.config(sources)).await
    }

    /// Only the receiver: what ingest leaves on the streams stays there to be inspected.
    pub async fn start_receiver(&self, sources: &str) -> Running {
        Running::start_with_roles(self.config(sources), Roles::RECEIVER).await
    }

    pub fn stream_key(&self, source: &str) -> String {
        format!("{}:{{{source}}}:events", self.prefix)
    }

    pub async fn stream_len(&self, source: &str) -> usize {
        redis::cmd("XLEN")
            .arg(self.stream_key(source))
            .query_async(&mut self.redis.clone())
            .await
            .unwrap()
    }

    /// Waits until `source`'s stream holds `expected` entries.
    pub async fn wait_for_stream_len(&self, source: &str, expected: usize) {
        let started = Instant::now();
        loop {
            let n = self.stream_len(source).await;
            if n == expected {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{source}'s stream holds {n} entries, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Entries of `source`'s stream read by a consumer of hookgate's group and not yet
    /// acknowledged.
    pub async fn stream_pending(&self, source: &str) -> usize {
        let reply: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
            .arg(self.stream_key(source))
            .arg(hookgate::queue::GROUP)
            .query_async(&mut self.redis.clone())
            .await
            .unwrap();
        reply.count()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    /// Waits until `sql` counts `expected`, failing the test after 15 s.
    pub async fn wait_for_count(&self, sql: &'static str, expected: i64) {
        let started = Instant::now();
        loop {
            let n = self.count(sql).await;
            if n == expected {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{sql}: {n}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`TestEnv::config_text`] in a file, for the `hookgate` binary's `--config`.
    pub fn config_file(&self, sources: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, self.config_text(sources).as_bytes()).unwrap();
        file
    }
}

impl Drop for TestEnv {
    // Runs on a thread of its own so it also cleans up after a panicking test. The test's
    // runtime is blocked meanwhile, so a gateway still running on it may hold locks in the
    // schema: its connections are ended first, and the drop gives up rather than wait forever.
    fn drop(&mut self) {
        let schema = self.schema.clone();
        let prefix = self.prefix.clone();
        clean_up_blocking(async move {
            if let Ok(admin) = PgPoolOptions::new()
                .max_connections(1)
                .connect(&base_database_url())
                .await
            {
                let _ = sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&admin)
                .await;
                let _ = sqlx::query("SET lock_timeout = '10s'")
                    .execute(&admin)
                    .await;
                let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
            }
            if let Ok(client) = redis::Client::open(redis_url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
            {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
                }
            }
        });
    }
}

/// Runs a test's cleanup to its end from a `Drop`: on a thread and runtime of its own, so it
/// runs after a panic too, and whatever state the test's runtime is in.
pub fn clean_up_blocking(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let cleanup = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(work);
    });
    let _ = cleanup.join();
}

/// A gateway running in this test process, with an HTTP client pointed at it.
pub struct Running {
    pub gateway: Option<Gateway>,
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    /// For the admin listener: shows redirects (`303 See Other`) instead of following them.
    pub admin_http: reqwest::Client,
}

impl Running {
    pub async fn start(config: Config) -> Self {
        Self::start_with_roles(config, Roles::ALL).await
    }

    pub async fn start_with_roles(config: Config, roles: Roles) -> Self {
        let gateway = Gateway::start(config, roles).await.unwrap();
        Self {
            base: format!("http://{}", gateway.public_addr.expect("the receiver runs")),
            admin: format!("http://{}", gateway.admin_addr),
            gateway: Some(gateway),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin_http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// A request to the admin listener at `path` (`/v1/...`) with `token` as bearer token.
    pub fn admin_request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.admin_http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(token)
    }

    /// GETs `path` from the admin listener with `token`; redirects are not followed.
    pub async fn admin_get(&self, path: &str, token: &str) -> Reply {
        let request = self.admin_request(reqwest::Method::GET, path, token);
        Reply::from(request.send().await.unwrap()).await
    }

    /// GETs `path` from the public listener.
    pub async fn get(&self, path: &str) -> Reply {
        let response = self.http.get(format!("{}{path}", self.base)).send().await;
        Reply::from(response.unwrap()).await
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await;
        response.unwrap().text().await.unwrap()
    }

    /// The samples of metric `name` (a histogram's `name_count`, say) labelled with `source`,
    /// keyed by their other labels, sorted (`destination=ci,outcome=retry`; empty if none).
    /// The recorder is shared by every test of the process, so only a source of the test's
    /// own says what the test did.
    pub async fn samples(&self, name: &str, source: &str) -> BTreeMap<String, f64> {
        let text = self.metrics().await;
        let source = format!("source={source}");
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (metric, labels) = match series.split_once('{') {
                Some((metric, labels)) => (metric, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<String> = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| l.replace('"', ""))
                .collect();
            let Some(at) = labels.iter().position(|l| *l == source) else {
                continue;
            };
            if metric == name {
                labels.remove(at);
                labels.sort();
                samples.insert(labels.join(","), value.parse().unwrap());
            }
        }
        samples
    }

    /// POSTs `body` with `headers` to `/webhooks/{source}`.
    pub async fn post(&self, source: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
        let mut request = self
            .http
            .post(format!("{}/webhooks/{source}", self.base))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Reply::from(request.send().await.unwrap()).await
    }

    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown_token().cancel();
            gateway.wait().await.unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(gateway) = &self.gateway {
            gateway.shutdown_token().cancel();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub json: serde_json::Value,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let headers = response.headers().clone();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Self {
            status,
            content_type,
            retry_after,
            headers,
            json,
        }
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts an RFC 9457 problem of this status and type slug, with a title and a detail
    /// that says something.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.json["status"], status, "{self:?}");
        assert_eq!(
            self.json["type"],
            format!("urn:hookgate:problem:{slug}"),
            "{self:?}"
        );
        let text = |key: &str| self.json[key].as_str().is_some_and(|text| !text.is_empty());
        assert!(text("title") && text("detail"), "{self:?}");
    }
}
