//! A hookgate process under test: a temporary config, `target/release/hookgate <role>`, its
//! readiness, its memory, and a clean slate (its database truncated, its Redis keys deleted)
//! before each run so every run starts from the same state.

use crate::sign::Preset;
use serde::Serialize;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The source every spawned gateway has, and the name of its one destination.
pub const SOURCE: &str = "bench";
pub const DESTINATION: &str = "sink";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source} (build it: cargo build --release --bin hookgate)")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("`hookgate {role}` exited with {status}; its log ends:\n{log}")]
    Exited {
        role: &'static str,
        status: std::process::ExitStatus,
        log: String,
    },
    #[error("hookgate did not become ready within {0:?}; log in {1}")]
    NotReady(Duration, PathBuf),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What every gateway of one bench invocation shares.
#[derive(Clone)]
pub struct Setup {
    pub binary: PathBuf,
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub preset: Preset,
    /// Passed to the gateway as HOOKGATE_LOG (its default is `info`: a line per webhook).
    pub log_filter: Option<String>,
    /// More keys of the destination (TOML lines), e.g. its `rate_limit`.
    pub destination_keys: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Run,
    Receive,
    Work,
}

impl Role {
    fn arg(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Receive => "receive",
            Self::Work => "work",
        }
    }
}

pub struct Gateway {
    child: Child,
    role: Role,
    pub listen: SocketAddr,
    /// Where its admin API and `/metrics` answer.
    pub admin: SocketAddr,
    pub log: PathBuf,
    dir: PathBuf,
    peak_rss: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

/// Memory of the gateway process, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Memory {
    /// Highest VmRSS seen by sampling every 20 ms.
    pub sampled_peak_rss_kib: u64,
    /// The kernel's high-water mark (VmHWM) over the process's life.
    pub hwm_kib: u64,
}

impl Memory {
    pub fn mib(&self) -> f64 {
        self.sampled_peak_rss_kib.max(self.hwm_kib) as f64 / 1024.0
    }
}

impl Setup {
    pub fn secret(&self) -> &'static str {
        self.preset.default_secret()
    }

    /// Writes a config with one source of the bench's preset, delivering to `sink` if given.
    fn config(
        &self,
        listen: SocketAddr,
        admin: SocketAddr,
        sink: Option<&str>,
        workers: usize,
    ) -> String {
        let destination = match sink {
            Some(url) => format!(
                "\n  [[sources.destinations]]\n  name = \"{DESTINATION}\"\n  url = \"{url}\"\n  timeout = \"10s\"\n{}",
                self.destination_keys
            ),
            None => String::new(),
        };
        format!(
            "listen = \"{listen}\"\nadmin_listen = \"{admin}\"\ndatabase_url = \"{db}\"\n\
             redis_url = {redis}\nstream_prefix = \"{prefix}\"\n\n\
             [worker]\nconcurrency = {workers}\n\n\
             [[sources]]\nname = \"{SOURCE}\"\nprovider = \"{provider}\"\nsecrets = [\"{secret}\"]\n\
             {extra}{destination}",
            db = self.database_url,
            redis = match self.redis_url.contains(',') {
                // A cluster: the list of its nodes.
                true => format!("{:?}", self.redis_url.split(',').collect::<Vec<_>>()),
                false => format!("{:?}", self.redis_url),
            },
            prefix = self.prefix,
            provider = self.preset.name(),
            secret = self.secret(),
            extra = self.preset.extra_source_keys(),
        )
    }

    /// Starts `hookgate <role>` and, for roles with a listener, waits until `/readyz` says ready.
    /// `sink` is the destination URL (none: the source has no destination).
    pub async fn start(
        &self,
        role: Role,
        sink: Option<&str>,
        workers: usize,
    ) -> Result<Gateway, GatewayError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hookgate-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| GatewayError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let (listen, admin) = (
            free_port().map_err(io(&dir))?,
            free_port().map_err(io(&dir))?,
        );
        let config = dir.join("hookgate.toml");
        std::fs::write(&config, self.config(listen, admin, sink, workers)).map_err(io(&config))?;
        let log = dir.join("hookgate.log");
        let log_file = std::fs::File::create(&log).map_err(io(&log))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&config)
            .arg(role.arg())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(io(&log))?)
            .stderr(log_file)
            .kill_on_drop(true);
        if let Some(filter) = &self.log_filter {
            command.env("HOOKGATE_LOG", filter);
        }
        let child = command.spawn().map_err(|source| GatewayError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        let peak_rss = Arc::new(AtomicU64::new(0));
        let sampler = tokio::spawn(sample_rss(pid, peak_rss.clone()));
        let mut gateway = Gateway {
            child,
            role,
            listen,
            admin,
            log,
            dir,
            peak_rss,
            sampler,
        };
        if role != Role::Work {
            gateway.wait_ready(Duration::from_secs(30)).await?;
        }
        Ok(gateway)
    }

    /// Applies hookgate's migrations to the bench database (`run` does it itself; the other
    /// roles expect it done).
    pub async fn migrate(&self) -> Result<(), GatewayError> {
        let dir =
            std::env::temp_dir().join(format!("hookgate-bench-{}-migrate", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| GatewayError::Io {
            path: dir.clone(),
            source,
        })?;
        let config = dir.join("hookgate.toml");
        // Ports are required keys of the file; `migrate` binds neither.
        let listen: SocketAddr = ([127, 0, 0, 1], 1).into();
        let admin: SocketAddr = ([127, 0, 0, 1], 2).into();
        std::fs::write(&config, self.config(listen, admin, None, 1)).map_err(|source| {
            GatewayError::Io {
                path: config.clone(),
                source,
            }
        })?;
        let output = Command::new(&self.binary)
            .arg("--config")
            .arg(&config)
            .arg("migrate")
            .output()
            .await
            .map_err(|source| GatewayError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        let _ = std::fs::remove_dir_all(&dir);
        if !output.status.success() {
            return Err(GatewayError::Exited {
                role: "migrate",
                status: output.status,
                log: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// Empties hookgate's tables in the bench database and deletes the bench prefix's Redis
    /// keys (the consumer group goes with its stream), so runs do not see each other's work.
    pub async fn reset(&self) -> Result<(), GatewayError> {
        let pool = sqlx::PgPool::connect(&self.database_url).await?;
        sqlx::query("TRUNCATE events CASCADE")
            .execute(&pool)
            .await?;
        pool.close().await;
        delete_keys(&self.redis_url, &self.prefix).await
    }

    /// Gives the planner statistics of the tables as they are now, as autovacuum would have
    /// on a gateway that ran for a while: a backlog ingested in a minute or two into freshly
    /// truncated tables has none, and Postgres then guesses that a batch of 64 ids is a third
    /// of the table and scans it whole.
    pub async fn analyze(&self) -> Result<(), GatewayError> {
        let pool = sqlx::PgPool::connect(&self.database_url).await?;
        sqlx::query("ANALYZE events, deliveries")
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }

    /// The same setup with its own schema of the database (created by the caller), so its
    /// tables are private, and its own key prefix. Its connections carry `application_name`,
    /// so they can be found in `pg_stat_activity`.
    pub fn in_schema(&self, schema: &str, application_name: &str, prefix: &str) -> Self {
        Self {
            database_url: url_in_schema(&self.database_url, schema, application_name),
            prefix: prefix.to_string(),
            ..self.clone()
        }
    }
}

/// `base` whose connections see only `schema` and carry `application_name`.
pub fn url_in_schema(base: &str, schema: &str, application_name: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={application_name}")
}

/// Deletes every Redis key under `<prefix>:`: on one server, or on each master of a cluster
/// (`redis_url` lists its nodes, comma-separated; replicas follow their masters).
pub async fn delete_keys(redis_url: &str, prefix: &str) -> Result<(), GatewayError> {
    for url in redis_url.split(',') {
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        if matches!(role.first(), Some(redis::Value::BulkString(r)) if r.as_slice() == b"slave") {
            continue;
        }
        delete_on_node(&mut conn, prefix).await?;
    }
    Ok(())
}

async fn delete_on_node(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Result<(), GatewayError> {
    // SCAN, not KEYS: the Redis is shared and KEYS would block everyone else's commands.
    let pattern = format!("{prefix}:*");
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        // One key per command: on a cluster node, keys of several sources are in several slots.
        for key in keys {
            redis::cmd("DEL").arg(key).query_async::<()>(conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

impl Gateway {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The value of an unlabelled metric in the gateway's `/metrics`, if it shows one.
    pub async fn metric(&self, client: &reqwest::Client, name: &str) -> Option<f64> {
        let url = format!("http://{}/metrics", self.admin);
        let text = client.get(url).send().await.ok()?.text().await.ok()?;
        metric_value(&text, name)
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<(), GatewayError> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.listen);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|source| GatewayError::Io {
                path: self.log.clone(),
                source,
            })? {
                return Err(self.exited(status));
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(GatewayError::NotReady(within, self.log.clone()))
    }

    fn exited(&self, status: std::process::ExitStatus) -> GatewayError {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        GatewayError::Exited {
            role: self.role.arg(),
            status,
            log: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    pub fn memory(&self) -> Memory {
        Memory {
            sampled_peak_rss_kib: self.peak_rss.load(Ordering::Relaxed),
            hwm_kib: self
                .pid()
                .and_then(|pid| status_kib(pid, "VmHWM:"))
                .unwrap_or(0),
        }
    }

    /// Its resident memory now.
    pub fn rss_mib(&self) -> f64 {
        let kib = self.pid().and_then(|pid| status_kib(pid, "VmRSS:"));
        kib.unwrap_or(0) as f64 / 1024.0
    }

    /// Lines of the gateway's log that are warnings or errors, for the report.
    pub fn problems(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .map(str::to_string)
            .collect()
    }

    /// SIGTERM (graceful: in-flight work finishes), then SIGKILL if it takes over 25 s.
    pub async fn stop(mut self) -> Memory {
        let memory = self.memory();
        self.sampler.abort();
        if let Some(pid) = self.child.id() {
            // Through kill(1): the crate has no signal-sending dependency, and this runs once
            // per gateway, never on a measured path.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(25), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        memory
    }
}

/// A port nobody listens on now; the gateway binds it a moment later.
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

async fn sample_rss(pid: u32, peak: Arc<AtomicU64>) {
    while let Some(kib) = status_kib(pid, "VmRSS:") {
        peak.fetch_max(kib, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A `kB` field of /proc/<pid>/status.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlabelled_metric_is_read_and_a_longer_name_is_not_taken_for_it() {
        let text = "# TYPE hookgate_leader gauge\nhookgate_leader_changes 3\nhookgate_leader 1\n\
                    hookgate_requeued_total{source=\"a\"} 2\n";
        assert_eq!(metric_value(text, "hookgate_leader"), Some(1.0));
        assert_eq!(metric_value(text, "hookgate_requeued_total"), None);
        assert_eq!(metric_value("", "hookgate_leader"), None);
    }

    #[test]
    fn a_schema_url_keeps_the_query_it_had() {
        assert_eq!(
            url_in_schema("postgres://h/db", "s1", "app"),
            "postgres://h/db?options=-c%20search_path%3Ds1&application_name=app"
        );
        assert_eq!(
            url_in_schema("postgres://h/db?sslmode=disable", "s1", "app"),
            "postgres://h/db?sslmode=disable&options=-c%20search_path%3Ds1&application_name=app"
        );
    }
}
