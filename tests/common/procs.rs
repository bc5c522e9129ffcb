//! Real processes run by a test: the `hookgate` binary in one role, or a private `redis-server`
//! the test may kill. Each is killed (SIGKILL) and reaped when dropped, so a test that panics
//! leaves none behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets to start answering.
const START_WITHIN: Duration = Duration::from_secs(30);

/// A loopback port that was free a moment ago: bound, read, released. A process told to
/// listen there can be restarted on the same address.
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// `text` (a configuration file) with the top-level `settings` set, replacing what it had.
pub fn with_settings(text: &str, settings: &[(&str, String)]) -> String {
    let mut table: toml::Table = text.parse().unwrap();
    for (key, value) in settings {
        table.insert(key.to_string(), toml::Value::String(value.clone()));
    }
    table.to_string()
}

/// A child process that is killed when dropped.
pub(super) struct Process {
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Runs `command` with its stdout and stderr appended to `log`.
    pub(super) fn spawn(command: &mut Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Self {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL: no shutdown, no flush, as a crash or the OOM killer ends a process.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Fails the test, with the end of the log, if the process has exited.
    pub(super) fn assert_alive(&mut self, what: &str) {
        let exited = self.child.as_mut().map(|c| c.try_wait().unwrap());
        if let Some(Some(status)) = exited {
            panic!("{what} exited ({status}):\n{}", log_tail(&self.log, 40));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Which part of hookgate a process runs.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    Receive,
    Work,
}

impl Role {
    fn command(self) -> &'static str {
        match self {
            Self::Receive => "receive",
            Self::Work => "work",
        }
    }
}

/// One `hookgate receive` or `hookgate work` process with a configuration file of its own,
/// listening on ports chosen once, so a restart comes back on the same addresses.
pub struct Hookgate {
    pub name: String,
    role: Role,
    config: PathBuf,
    /// `http://127.0.0.1:<port>` of the webhook listener (a worker binds none).
    pub base: String,
    /// `http://127.0.0.1:<port>` of the admin listener.
    pub admin: String,
    process: Process,
}

impl Hookgate {
    /// Writes `config` (with free ports for both listeners) to `<dir>/<name>.toml`, starts the
    /// process (its output goes to `<dir>/<name>.log`) and waits until it answers.
    pub async fn start(dir: &Path, name: &str, role: Role, config: &str) -> Self {
        let (public, admin) = (free_port(), free_port());
        let text = with_settings(
            config,
            &[
                ("listen", format!("127.0.0.1:{public}")),
                ("admin_listen", format!("127.0.0.1:{admin}")),
            ],
        );
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut gateway = Self {
            name: name.to_string(),
            role,
            process: Process::spawn(&mut Self::command(role, &path), &log),
            config: path,
            base: format!("http://127.0.0.1:{public}"),
            admin: format!("http://127.0.0.1:{admin}"),
        };
        gateway.until_ready().await;
        gateway
    }

    fn command(role: Role, config: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
        command.arg("--config").arg(config).arg(role.command());
        command
    }

    /// Ready once the admin listener answers: both listeners are bound by then, after the
    /// migrations.
    async fn until_ready(&mut self) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            self.process.assert_alive(&self.name);
            let answer = http.get(format!("{}/metrics", self.admin)).send().await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return;
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "{} did not start within {START_WITHIN:?}:\n{}",
                self.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, whatever the process is doing.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the process again with the same configuration and addresses.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.process = Process::spawn(
            &mut Self::command(self.role, &self.config),
            &self.process.log,
        );
        self.until_ready().await;
    }

    /// The admin listener's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let answer = reqwest::get(format!("{}/metrics", self.admin)).await;
        answer.unwrap().text().await.unwrap()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.process.log, lines)
    }
}

/// A `redis-server` of the test's own, without persistence, on a port of its own: it can be
/// killed and restarted empty without touching the shared Redis.
pub struct PrivateRedis {
    pub url: String,
    port: u16,
    dir: PathBuf,
    process: Process,
}

impl PrivateRedis {
    /// Starts it, its files and log in `dir`, and waits until it answers.
    pub async fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            dir: dir.to_path_buf(),
            process: Self::spawn(dir, port),
        };
        redis.until_ready().await;
        redis
    }

    fn spawn(dir: &Path, port: u16) -> Process {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir);
        Process::spawn(&mut command, &dir.join("redis.log"))
    }

    async fn until_ready(&mut self) {
        let started = Instant::now();
        loop {
            self.process.assert_alive("redis-server");
            if let Ok(mut conn) = self.connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < START_WITHIN,
                "redis-server did not start within {START_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: streams, groups, pending entries, everything in it is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// A new, empty server on the same port.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(&self.dir, self.port);
        self.until_ready().await;
    }

    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url.as_str())?
            .get_multiplexed_async_connection()
            .await
    }
}
