//! What an idle cluster costs while a backlog waits (issue 15): pending deliveries seeded
//! straight into Postgres, an idle `hookgate run` cluster (one leader, the rest standing by)
//! on top, and the CPU of every process involved over a window, next to the same cluster on
//! an empty schema.
//!
//! Each scenario has its own schema of the bench database and its own key prefix, both
//! removed at the end. The prefix is `<prefix>-idle-<id>-<scenario>`, beside `<prefix>:` rather
//! than under it, so that the other commands' reset (every `<prefix>:*` key) run meanwhile by
//! someone else cannot delete its epoch, which would look like Redis data loss. Seeded deliveries are either *queued* (due, `requeue_at` NULL: on a
//! stream as far as Postgres knows) or *waiting for a retry* (due in an hour); each source's
//! epoch is recorded in Postgres and Redis alike, so the scheduler sees no Redis data loss and
//! recovers nothing. No delivery is due for a worker, so the destination is never called.
//!
//! CPU is utime + stime from `/proc/<pid>/stat`, as % of one core over the window:
//! - each hookgate process;
//! - the Postgres backends serving them, found by their `application_name` in
//!   `pg_stat_activity` every second (the leader's lock session included);
//! - short sessions: a standby opens a session per campaign that lives a few milliseconds,
//!   too short to be seen in `pg_stat_activity`. They are counted (`sessions` of
//!   `pg_stat_database`, so the database should be one only this command uses: sessions of
//!   other applications seen in it during the window are reported) and charged at the CPU one such
//!   session costs, measured before the rounds by opening sessions like it (connect, `SET`,
//!   `pg_try_advisory_lock` on another key, close) and reading each backend's CPU time from
//!   `/proc/<pid>/schedstat` just before it closes (the postmaster's fork is not in it);
//! - for reference, not in the totals: the postmaster with every backend that ended during the
//!   window (its reaped children's time), *anyone's*, so only an upper bound when others use
//!   this Postgres;
//! - `redis-server` (from `INFO server`), which is shared with whoever else uses it.

use crate::gateway::{self, Gateway, GatewayError, Role, Setup};
use crate::report::median;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The destination of the spawned source: nothing listens on the discard port.
const NOWHERE: &str = "http://127.0.0.1:9/never-called";
/// The application name of the bench's own connections, which are not the cluster's.
const MONITOR: &str = "hookgate-idle-bench-monitor";
/// Rows seeded per statement.
const CHUNK: u64 = 250_000;

pub struct IdlePlan {
    /// Pending deliveries of the backlog scenario (one event each).
    pub deliveries: u64,
    /// The share of them waiting for a retry; the rest are queued.
    pub retry_share: f64,
    /// Open dead letters of the backlog scenario.
    pub dead_letters: u64,
    /// Payload bytes per event.
    pub size: usize,
    /// `hookgate run` processes in the cluster.
    pub processes: usize,
    pub workers: usize,
    pub warmup: Duration,
    pub window: Duration,
    /// Rounds; each measures both scenarios, in alternating order.
    pub repeat: usize,
    /// Leave the schemas and keys in place (they are named on stderr).
    pub keep: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("no process of the cluster leads within {0:?}")]
    NoLeader(Duration),
    #[error("hookgate process {0} is gone from /proc")]
    Gone(u32),
}

/// One scenario's schema, prefix and application name.
struct Scenario {
    name: &'static str,
    schema: String,
    setup: Setup,
    application_name: String,
    deliveries: u64,
    dead_letters: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    /// `leader` or `standby`, as its `/metrics` said at the end of the window.
    pub role: &'static str,
    pub pid: u32,
    pub cpu_pct: f64,
}

/// One scenario measured once. Every `_pct` is % of one core over the window.
#[derive(Debug, Clone, Serialize)]
pub struct IdleRun {
    pub scenario: &'static str,
    pub round: usize,
    pub deliveries: u64,
    pub dead_letters: u64,
    pub window_s: f64,
    pub hookgate: Vec<ProcessCpu>,
    pub hookgate_pct: f64,
    /// Backends of the cluster seen in `pg_stat_activity` during the window.
    pub backends: usize,
    pub backends_pct: f64,
    /// Sessions opened in the bench database during the window (the cluster's short ones).
    pub sessions_opened: i64,
    /// Backends of other applications seen in the database during the window: when not 0,
    /// `sessions_opened` may count theirs too.
    pub foreign_backends: usize,
    /// Those sessions at the measured cost of one.
    pub short_sessions_pct: f64,
    /// The postmaster and every backend that ended in the window, anyone's: not in the totals.
    pub ended_backends_pct: Option<f64>,
    /// Shared with every other user of this Redis.
    pub redis_pct: Option<f64>,
    /// hookgate + its backends + its short sessions: what is this cluster's alone.
    pub own_pct: f64,
    /// Everything above, the shared parts included.
    pub total_pct: f64,
    /// WARN/ERROR lines in the processes' logs.
    pub warnings: usize,
    /// The first of them.
    pub warning_lines: Vec<String>,
}

impl IdleRun {
    fn print(&self) {
        let processes: Vec<String> = (self.hookgate.iter())
            .map(|p| format!("{} {:.2}", p.role, p.cpu_pct))
            .collect();
        eprintln!(
            "idle {} (round {}): hookgate {:.2} % [{}]; {} backends {:.2} %; {} short sessions {:.2} %; redis {}; own {:.2} %, total {:.2} % of a core (ended backends of anyone and postmaster {}); {} foreign backends; {} warnings",
            self.scenario,
            self.round,
            self.hookgate_pct,
            processes.join(", "),
            self.backends,
            self.backends_pct,
            self.sessions_opened,
            self.short_sessions_pct,
            pct(self.redis_pct),
            self.own_pct,
            self.total_pct,
            pct(self.ended_backends_pct),
            self.foreign_backends,
            self.warnings,
        );
        for line in &self.warning_lines {
            eprintln!("  {line}");
        }
    }
}

fn pct(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2} %"))
}

/// Medians of one scenario's runs.
#[derive(Debug, Clone, Serialize)]
pub struct IdleSummary {
    pub scenario: &'static str,
    pub deliveries: u64,
    pub dead_letters: u64,
    pub runs: usize,
    pub leader_pct: f64,
    pub standby_pct: f64,
    pub hookgate_pct: f64,
    pub backends_pct: f64,
    pub short_sessions_pct: f64,
    pub ended_backends_pct: f64,
    pub redis_pct: f64,
    pub own_pct: f64,
    pub total_pct: f64,
}

impl IdleSummary {
    fn of(runs: &[&IdleRun]) -> Option<Self> {
        let first = runs.first()?;
        let m = |f: &dyn Fn(&IdleRun) -> f64| median(runs.iter().map(|r| f(r)));
        let role = |role: &'static str| {
            move |r: &IdleRun| {
                (r.hookgate.iter())
                    .filter(|p| p.role == role)
                    .map(|p| p.cpu_pct)
                    .sum::<f64>()
            }
        };
        Some(Self {
            scenario: first.scenario,
            deliveries: first.deliveries,
            dead_letters: first.dead_letters,
            runs: runs.len(),
            leader_pct: m(&role("leader")),
            standby_pct: m(&role("standby")),
            hookgate_pct: m(&|r| r.hookgate_pct),
            backends_pct: m(&|r| r.backends_pct),
            short_sessions_pct: m(&|r| r.short_sessions_pct),
            ended_backends_pct: m(&|r| r.ended_backends_pct.unwrap_or(0.0)),
            redis_pct: m(&|r| r.redis_pct.unwrap_or(0.0)),
            own_pct: m(&|r| r.own_pct),
            total_pct: m(&|r| r.total_pct),
        })
    }

    fn print(&self) {
        eprintln!(
            "idle {} ({} deliveries, {} dead letters; median of {}): leader {:.2} %, standby {:.2} %, hookgate {:.2} %, backends {:.2} %, short sessions {:.2} %, redis {:.2} %; own {:.2} %, total {:.2} % of a core (ended backends of anyone and postmaster {:.2} %)",
            self.scenario,
            self.deliveries,
            self.dead_letters,
            self.runs,
            self.leader_pct,
            self.standby_pct,
            self.hookgate_pct,
            self.backends_pct,
            self.short_sessions_pct,
            self.redis_pct,
            self.own_pct,
            self.total_pct,
            self.ended_backends_pct,
        );
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub processes: usize,
    pub workers: usize,
    pub clock_ticks_per_s: u64,
    /// CPU of one short session (connect, two statements, close), median of the calibration.
    pub session_cost_ms: f64,
    pub runs: Vec<IdleRun>,
    pub summaries: Vec<IdleSummary>,
}

impl IdleReport {
    pub fn print(&self) {
        eprintln!(
            "idle: a short session costs its backend {:.2} ms of CPU",
            self.session_cost_ms
        );
        for summary in &self.summaries {
            summary.print();
        }
    }
}

pub async fn run(base: &Setup, plan: &IdlePlan) -> Result<IdleReport, IdleError> {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let scenario = |name: &'static str, deliveries: u64, dead_letters: u64| {
        let schema = format!("hgbench_idle_{id}_{name}");
        let application_name = format!("hookgate-idle-bench-{id}-{name}");
        let prefix = format!("{}-idle-{id}-{name}", base.prefix);
        Scenario {
            name,
            setup: base.in_schema(&schema, &application_name, &prefix),
            schema,
            application_name,
            deliveries,
            dead_letters,
        }
    };
    let scenarios = [
        scenario("none", 0, 0),
        scenario("backlog", plan.deliveries, plan.dead_letters),
    ];
    let options: sqlx::postgres::PgConnectOptions = base.database_url.parse()?;
    let admin = PgPool::connect_with(options.application_name(MONITOR)).await?;
    let result = measure_all(&admin, &scenarios, plan).await;
    if plan.keep {
        for s in &scenarios {
            eprintln!(
                "idle: kept schema {} and keys {}:* (drop them with DROP SCHEMA .. CASCADE and DEL)",
                s.schema, s.setup.prefix
            );
        }
    } else {
        for s in &scenarios {
            let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                s.schema
            )))
            .execute(&admin)
            .await;
            if let Err(error) = dropped {
                eprintln!("idle: cannot drop schema {}: {error}", s.schema);
            }
            if let Err(error) = gateway::delete_keys(&s.setup.redis_url, &s.setup.prefix).await {
                eprintln!("idle: cannot delete keys {}:*: {error}", s.setup.prefix);
            }
        }
    }
    admin.close().await;
    result
}

async fn measure_all(
    admin: &PgPool,
    scenarios: &[Scenario],
    plan: &IdlePlan,
) -> Result<IdleReport, IdleError> {
    let mut monitors = Vec::new();
    for s in scenarios {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {}", s.schema)))
            .execute(admin)
            .await?;
        s.setup.migrate().await?;
        // The bench's own connection, under another name than the cluster's.
        let url = gateway::url_in_schema(&base_url(&s.setup.database_url), &s.schema, MONITOR);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        seed(&pool, s, plan).await?;
        monitors.push(pool);
    }
    let clock = clock_ticks_per_s();
    let session_cost = session_cost(&scenarios[0], CALIBRATION_SESSIONS).await?;
    eprintln!(
        "idle: a short session costs its backend {:.2} ms of CPU (median of {CALIBRATION_SESSIONS})",
        session_cost * 1e3
    );
    let redis_pid = redis_pid(&scenarios[0].setup.redis_url).await;
    let client = reqwest::Client::new();
    let mut runs = Vec::new();
    for round in 1..=plan.repeat {
        // Alternating order, so a drift in outside load does not always hit the same one.
        let mut order: Vec<usize> = (0..scenarios.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            let (s, monitor) = (&scenarios[i], &monitors[i]);
            let cluster = start_cluster(&s.setup, &client, plan).await?;
            tokio::time::sleep(plan.warmup).await;
            let measured = measure(&cluster, monitor, s, redis_pid, clock, plan.window).await;
            // Roles are read before any process stops: a standby takes over within a second.
            let mut hookgate = Vec::new();
            let mut warnings = Vec::new();
            for gateway in &cluster {
                let leads = gateway.metric(&client, "hookgate_leader").await == Some(1.0);
                let role = if leads { "leader" } else { "standby" };
                warnings.extend(gateway.problems());
                hookgate.push((role, gateway.pid().unwrap_or_default()));
            }
            for gateway in cluster {
                gateway.stop().await;
            }
            let cpu = measured?;
            let run = cpu.run(s, round, hookgate, warnings, session_cost);
            run.print();
            runs.push(run);
        }
    }
    for pool in monitors {
        pool.close().await;
    }
    let summaries = scenarios
        .iter()
        .filter_map(|s| {
            let of: Vec<&IdleRun> = runs.iter().filter(|r| r.scenario == s.name).collect();
            IdleSummary::of(&of)
        })
        .collect();
    Ok(IdleReport {
        processes: plan.processes,
        workers: plan.workers,
        clock_ticks_per_s: clock,
        session_cost_ms: session_cost * 1e3,
        runs,
        summaries,
    })
}

/// The database URL without the query a schema added.
fn base_url(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// Fills the scenario's schema: pending deliveries and dead letters, then the epochs, so
/// that the scheduler finds Postgres and Redis agreeing.
async fn seed(pool: &PgPool, s: &Scenario, plan: &IdlePlan) -> Result<(), IdleError> {
    let started = Instant::now();
    let source = gateway::SOURCE;
    let repeats = (plan.size / 32).max(1) as i32;
    let retries = ((s.deliveries as f64) * plan.retry_share.clamp(0.0, 1.0)).round() as u64;
    let queued = s.deliveries - retries;
    // Events 1..=queued are queued, the rest wait for a retry.
    for (first, last, retry) in
        chunks(1, queued, false)
            .into_iter()
            .chain(chunks(queued + 1, s.deliveries, true))
    {
        sqlx::query(SEED_PENDING)
            .bind(source)
            .bind(first as i64)
            .bind(last as i64)
            .bind(repeats)
            .bind(HEADERS)
            .bind(gateway::DESTINATION)
            .bind(retry)
            .execute(pool)
            .await?;
        eprintln!(
            "idle {}: seeded deliveries {first}..={last} ({}) in {:.0} s",
            s.name,
            if retry {
                "waiting for a retry"
            } else {
                "queued"
            },
            started.elapsed().as_secs_f64()
        );
    }
    for (first, last, _) in chunks(1, s.dead_letters, false) {
        sqlx::query(SEED_DEAD)
            .bind(source)
            .bind(first as i64)
            .bind(last as i64)
            .bind(repeats)
            .bind(HEADERS)
            .bind(gateway::DESTINATION)
            .execute(pool)
            .await?;
        eprintln!(
            "idle {}: seeded dead letters {first}..={last} in {:.0} s",
            s.name,
            started.elapsed().as_secs_f64()
        );
    }
    // A cluster that ran before: the routes its last leader ran with, so the election does
    // not sweep for deliveries whose route is gone (it does on a first start).
    sqlx::query("INSERT INTO configured_routes (source, destination) VALUES ($1, $2)")
        .bind(source)
        .bind(gateway::DESTINATION)
        .execute(pool)
        .await?;
    let epoch = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query("INSERT INTO stream_epochs (source, epoch) VALUES ($1, $2)")
        .bind(source)
        .bind(&epoch)
        .execute(pool)
        .await?;
    let mut redis = redis::Client::open(s.setup.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    // The key hookgate's `Streams::epoch_key` reads (src/queue/epoch.rs).
    redis::cmd("SET")
        .arg(format!("{}:{{{source}}}:epoch", s.setup.prefix))
        .arg(&epoch)
        .query_async::<()>(&mut redis)
        .await?;
    sqlx::raw_sql("VACUUM ANALYZE events, deliveries, dead_letters, dead_letter_counts")
        .execute(pool)
        .await?;
    eprintln!(
        "idle {}: {} deliveries ({queued} queued, {retries} waiting for a retry) and {} dead letters seeded and vacuumed in {:.0} s",
        s.name,
        s.deliveries,
        s.dead_letters,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `first..=last` in inclusive pieces of at most [`CHUNK`], each tagged with `tag`.
fn chunks<T: Copy>(first: u64, last: u64, tag: T) -> Vec<(u64, u64, T)> {
    (first..=last)
        .step_by(CHUNK as usize)
        .map(|start| (start, (start + CHUNK - 1).min(last), tag))
        .collect()
}

const HEADERS: &str = r#"[["content-type","application/json"],["user-agent","GitHub-Hookshot/idle"],["x-github-event","issues"]]"#;

/// Events $2..=$3 of source $1, each with its one delivery to $6: queued (due ten minutes
/// ago, `requeue_at` NULL) unless $7, then failed once and waiting for a retry in an hour.
/// The payload is ~32 * $4 bytes of JSON.
const SEED_PENDING: &str = r#"
WITH e AS (
    INSERT INTO events (id, source, external_id, payload, headers, received_at)
    SELECT gen_random_uuid(), $1, 'idle-' || i,
           convert_to(format('{"action":"opened","number":%s,"body":"%s"}',
                             i, repeat(md5(i::text), $4)), 'UTF8'),
           $5::jsonb, now() - interval '10 minutes'
    FROM generate_series($2::bigint, $3::bigint) AS i
    RETURNING id
)
INSERT INTO deliveries (event_id, destination, attempts, max_attempts, next_attempt_at,
                        requeue_at, first_attempt_at, last_attempt_at, last_error)
SELECT id, $6,
       CASE WHEN $7 THEN 1 ELSE 0 END, 10,
       CASE WHEN $7 THEN now() + interval '1 hour' ELSE now() - interval '10 minutes' END,
       CASE WHEN $7 THEN now() + interval '1 hour' END,
       CASE WHEN $7 THEN now() - interval '9 minutes' END,
       CASE WHEN $7 THEN now() - interval '9 minutes' END,
       CASE WHEN $7 THEN 'connection refused' END
FROM e
"#;

/// Dead-lettered events $2..=$3 of source $1: the event, its dead delivery to $6 and its open
/// dead letter (the insert trigger of migration 0008 adds them to dead_letter_counts).
const SEED_DEAD: &str = r#"
WITH e AS (
    INSERT INTO events (id, source, external_id, payload, headers, received_at, status)
    SELECT gen_random_uuid(), $1, 'idle-dead-' || i,
           convert_to(format('{"action":"closed","number":%s,"body":"%s"}',
                             i, repeat(md5(i::text), $4)), 'UTF8'),
           $5::jsonb, now() - interval '1 day', 'dead_lettered'
    FROM generate_series($2::bigint, $3::bigint) AS i
    RETURNING id, payload
), d AS (
    INSERT INTO deliveries (event_id, destination, state, reason, attempts, max_attempts,
                            next_attempt_at, first_attempt_at, last_attempt_at, last_error)
    SELECT id, $6, 'dead', 'attempts exhausted', 10, 10, now() - interval '1 day',
           now() - interval '1 day', now() - interval '1 day', 'connection refused'
    FROM e
)
INSERT INTO dead_letters (id, event_id, source, destination, payload, attempts, last_error,
                          failure_kind, first_attempt_at, last_attempt_at, created_at)
SELECT gen_random_uuid(), id, $1, $6, payload, 10, 'connection refused', 'connection',
       now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
FROM e
"#;

/// Starts the cluster and waits until one of its processes leads.
async fn start_cluster(
    setup: &Setup,
    client: &reqwest::Client,
    plan: &IdlePlan,
) -> Result<Vec<Gateway>, IdleError> {
    let mut cluster = Vec::new();
    for _ in 0..plan.processes.max(1) {
        cluster.push(setup.start(Role::Run, Some(NOWHERE), plan.workers).await?);
    }
    let within = Duration::from_secs(30);
    let deadline = Instant::now() + within;
    loop {
        for gateway in &cluster {
            if gateway.metric(client, "hookgate_leader").await == Some(1.0) {
                return Ok(cluster);
            }
        }
        if Instant::now() > deadline {
            for gateway in cluster {
                gateway.stop().await;
            }
            return Err(IdleError::NoLeader(within));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU time of a process from `/proc/<pid>/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    /// utime + stime.
    pub own: u64,
    /// cutime + cstime: children it has waited for.
    pub children: u64,
}

/// utime, stime, cutime and cstime (fields 14-17) of a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may hold spaces and parentheses itself, so the fields
/// are counted from its last `)`.
pub fn parse_stat(text: &str) -> Option<Ticks> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest starts at field 3 (state): field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Ticks {
        own: field(14)? + field(15)?,
        children: field(16)? + field(17)?,
    })
}

fn ticks(pid: u32) -> Option<Ticks> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The parent of `pid` (field 4 of its stat).
fn parent(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU used by a changing set of processes over a window: each process from the first
/// reading (or from 0 if it appeared after the window began) to the last one it was seen at.
#[derive(Debug, Default)]
pub struct Tracker {
    first: HashMap<u32, u64>,
    last: HashMap<u32, u64>,
}

impl Tracker {
    /// A reading at the start of the window.
    pub fn start(&mut self, pid: u32, ticks: u64) {
        self.first.insert(pid, ticks);
        self.last.insert(pid, ticks);
    }

    /// A later reading; a process first seen now began within the window.
    pub fn observe(&mut self, pid: u32, ticks: u64) {
        self.first.entry(pid).or_insert(0);
        self.last.insert(pid, ticks);
    }

    pub fn processes(&self) -> usize {
        self.last.len()
    }

    pub fn used(&self, pid: u32) -> u64 {
        let first = self.first.get(&pid).copied().unwrap_or(0);
        self.last
            .get(&pid)
            .map_or(0, |last| last.saturating_sub(first))
    }

    pub fn total(&self) -> u64 {
        self.last.keys().map(|&pid| self.used(pid)).sum()
    }
}

/// % of one core that `ticks` are over `seconds`.
pub fn percent_of_core(ticks: u64, clock: u64, seconds: f64) -> f64 {
    ticks as f64 / clock as f64 / seconds * 100.0
}

/// What one window measured, before it is named.
struct Cpu {
    window_s: f64,
    clock: u64,
    hookgate: Tracker,
    backends: Tracker,
    ended: Option<u64>,
    sessions_opened: i64,
    /// Backends of other applications in the database.
    foreign: HashSet<u32>,
    redis: Option<u64>,
}

impl Cpu {
    fn run(
        &self,
        s: &Scenario,
        round: usize,
        roles: Vec<(&'static str, u32)>,
        warnings: Vec<String>,
        session_cost_s: f64,
    ) -> IdleRun {
        let pct = |ticks: u64| percent_of_core(ticks, self.clock, self.window_s);
        let hookgate: Vec<ProcessCpu> = roles
            .into_iter()
            .map(|(role, pid)| ProcessCpu {
                role,
                pid,
                cpu_pct: pct(self.hookgate.used(pid)),
            })
            .collect();
        let hookgate_pct = pct(self.hookgate.total());
        let backends_pct = pct(self.backends.total());
        let ended_backends_pct = self.ended.map(pct);
        let redis_pct = self.redis.map(pct);
        let short_sessions_pct =
            self.sessions_opened.max(0) as f64 * session_cost_s / self.window_s * 100.0;
        let own_pct = hookgate_pct + backends_pct + short_sessions_pct;
        IdleRun {
            scenario: s.name,
            round,
            deliveries: s.deliveries,
            dead_letters: s.dead_letters,
            window_s: self.window_s,
            hookgate,
            hookgate_pct,
            backends: self.backends.processes(),
            backends_pct,
            sessions_opened: self.sessions_opened,
            short_sessions_pct,
            ended_backends_pct,
            redis_pct,
            own_pct,
            total_pct: own_pct + redis_pct.unwrap_or(0.0),
            foreign_backends: self.foreign.len(),
            warnings: warnings.len(),
            warning_lines: warnings.into_iter().take(10).collect(),
        }
    }
}

/// The backends of `application_name`, and those of other applications in the same database
/// (the bench's own monitor aside).
async fn backend_pids(
    monitor: &PgPool,
    application_name: &str,
) -> Result<(Vec<u32>, Vec<u32>), IdleError> {
    let rows: Vec<(i32, bool)> = sqlx::query_as(
        "SELECT pid, application_name = $1 FROM pg_stat_activity
         WHERE datname = current_database() AND application_name <> $2
           AND (application_name = $1 OR backend_type = 'client backend')",
    )
    .bind(application_name)
    .bind(MONITOR)
    .fetch_all(monitor)
    .await?;
    let (own, foreign): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, own)| *own);
    let pids = |rows: Vec<(i32, bool)>| rows.into_iter().map(|(p, _)| p as u32).collect();
    Ok((pids(own), pids(foreign)))
}

async fn sessions(monitor: &PgPool) -> Result<i64, IdleError> {
    // Stats of other sessions reach pg_stat_database when they end, or within a second.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(monitor)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(monitor)
    .await?)
}

/// The postmaster's own time plus that of its children that ended.
fn postmaster_ticks(pid: u32) -> Option<u64> {
    ticks(pid).map(|t| t.own + t.children)
}

async fn measure(
    cluster: &[Gateway],
    monitor: &PgPool,
    s: &Scenario,
    redis_pid: Option<u32>,
    clock: u64,
    window: Duration,
) -> Result<Cpu, IdleError> {
    let pids: Vec<u32> = cluster.iter().filter_map(Gateway::pid).collect();
    let mut hookgate = Tracker::default();
    let mut backends = Tracker::default();
    let (backend_list, foreign_list) = backend_pids(monitor, &s.application_name).await?;
    let mut foreign: HashSet<u32> = foreign_list.into_iter().collect();
    let postmaster = backend_list.first().and_then(|&pid| parent(pid));
    let sessions_before = sessions(monitor).await?;
    let started = Instant::now();
    let postmaster_before = postmaster.and_then(postmaster_ticks);
    let redis_before = redis_pid.and_then(ticks);
    for &pid in &pids {
        hookgate.start(pid, ticks(pid).ok_or(IdleError::Gone(pid))?.own);
    }
    for pid in backend_list {
        if let Some(t) = ticks(pid) {
            backends.start(pid, t.own);
        }
    }
    let end = started + window;
    loop {
        let now = Instant::now();
        let last = now >= end;
        if !last {
            tokio::time::sleep((end - now).min(Duration::from_secs(1))).await;
        }
        for &pid in &pids {
            hookgate.observe(pid, ticks(pid).ok_or(IdleError::Gone(pid))?.own);
        }
        let (own, others) = backend_pids(monitor, &s.application_name).await?;
        for pid in own {
            if let Some(t) = ticks(pid) {
                backends.observe(pid, t.own);
            }
        }
        foreign.extend(others);
        if last {
            break;
        }
    }
    let window_s = started.elapsed().as_secs_f64();
    let ended = match (postmaster_before, postmaster.and_then(postmaster_ticks)) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let redis = match (redis_before, redis_pid.and_then(ticks)) {
        (Some(before), Some(after)) => Some(after.own.saturating_sub(before.own)),
        _ => None,
    };
    // Sessions that ended in the window report within a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let sessions_opened = sessions(monitor).await? - sessions_before;
    Ok(Cpu {
        window_s,
        clock,
        hookgate,
        backends,
        ended,
        sessions_opened,
        foreign,
        redis,
    })
}

/// Sessions opened to measure what one short session costs.
const CALIBRATION_SESSIONS: usize = 40;

/// CPU seconds a session like a standby's campaign costs its backend: the median over `n`
/// sessions (connect, `SET`, an advisory lock on a key no leader uses, close), each read from
/// `/proc/<backend>/schedstat` (nanoseconds on a CPU) just before it closes.
async fn session_cost(s: &Scenario, n: usize) -> Result<f64, IdleError> {
    use sqlx::Connection;
    let url = gateway::url_in_schema(
        &base_url(&s.setup.database_url),
        &s.schema,
        "hookgate-idle-bench-calibration",
    );
    let mut costs = Vec::new();
    for _ in 0..n {
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        sqlx::raw_sql("SET idle_session_timeout = 10000")
            .execute(&mut conn)
            .await?;
        let (pid, _): (i32, bool) = sqlx::query_as(
            "SELECT pg_backend_pid(), pg_try_advisory_lock(0, hashtext(current_schema()))",
        )
        .fetch_one(&mut conn)
        .await?;
        let ns = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok());
        conn.close().await?;
        if let Some(ns) = ns {
            costs.push(ns as f64 / 1e9);
        }
    }
    Ok(median(costs.into_iter()))
}

/// The redis-server's pid, if it runs on this machine (its `INFO server` says which).
async fn redis_pid(redis_url: &str) -> Option<u32> {
    let mut conn = redis::Client::open(redis_url)
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .ok()?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    comm.starts_with("redis-server").then_some(pid)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that cannot be run).
fn clock_ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with a space and a parenthesis; utime 1200, stime 34, cutime 5,
        // cstime 6.
        let line = "4242 (postgres: a) b) S 1 4242 4242 0 -1 4194560 817 0 0 0 \
                    1200 34 5 6 20 0 1 0 1234 123456 789 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Ticks {
                own: 1234,
                children: 11
            })
        );
        assert_eq!(parent(0), None);
        assert_eq!(parse_stat("4242 (cut short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_a_stat_and_a_parent() {
        let me = std::process::id();
        assert!(ticks(me).is_some());
        assert!(parent(me).is_some_and(|p| p != me));
    }

    #[test]
    fn the_tracker_counts_late_comers_from_zero_and_leavers_to_their_last_reading() {
        let mut t = Tracker::default();
        t.start(1, 100);
        t.start(2, 50);
        t.observe(1, 130);
        t.observe(3, 7); // began within the window
        t.observe(1, 160);
        // 2 was not seen again: it ended, its time after the start reading is lost.
        assert_eq!((t.used(1), t.used(2), t.used(3)), (60, 0, 7));
        assert_eq!((t.total(), t.processes()), (67, 3));
    }

    #[test]
    fn percent_of_one_core() {
        assert_eq!(percent_of_core(300, 100, 60.0), 5.0);
        assert_eq!(percent_of_core(0, 100, 60.0), 0.0);
    }

    #[test]
    fn seeding_covers_the_range_in_pieces() {
        assert_eq!(
            chunks(1, 600_000, true),
            vec![
                (1, 250_000, true),
                (250_001, 500_000, true),
                (500_001, 600_000, true)
            ]
        );
        assert_eq!(chunks(1, 0, ()), vec![]);
        assert_eq!(chunks(500_001, 1_000_000, ()).len(), 2);
    }

    #[test]
    fn summaries_take_medians_by_role() {
        let run = |leader: f64, total: f64| IdleRun {
            scenario: "backlog",
            round: 1,
            deliveries: 10,
            dead_letters: 1,
            window_s: 60.0,
            hookgate: vec![
                ProcessCpu {
                    role: "standby",
                    pid: 1,
                    cpu_pct: 0.1,
                },
                ProcessCpu {
                    role: "leader",
                    pid: 2,
                    cpu_pct: leader,
                },
            ],
            hookgate_pct: leader + 0.1,
            backends: 3,
            backends_pct: 0.5,
            sessions_opened: 60,
            foreign_backends: 0,
            short_sessions_pct: 0.1,
            ended_backends_pct: None,
            redis_pct: Some(0.2),
            own_pct: leader + 0.6,
            total_pct: total,
            warnings: 0,
            warning_lines: Vec::new(),
        };
        let runs = [run(1.0, 3.0), run(3.0, 9.0), run(2.0, 4.0)];
        let summary = IdleSummary::of(&runs.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            (summary.leader_pct, summary.standby_pct, summary.total_pct),
            (2.0, 0.1, 4.0)
        );
        assert_eq!(summary.runs, 3);
        assert!(IdleSummary::of(&[]).is_none());
    }
}
