//! hookgate-bench: load generator and measurement harness for hookgate (issue 5).
//!
//! - `ingest`: pre-signed webhooks against a running gateway, closed or open loop;
//! - `floor`: what Postgres and Redis alone do for the same rows, on private tables and keys;
//! - `e2e`: delivery latency and worker throughput through a built-in sink;
//! - `suite`: floor and ingest against gateways it starts itself, with ratios and medians;
//! - `idle`: the CPU an idle cluster spends while a seeded backlog waits, and with none.
//!
//! Human-readable progress goes to stderr; `--json` prints the full report on stdout.

mod drain;
mod e2e;
mod floor;
mod gateway;
mod idle;
mod load;
mod report;
mod sign;
mod soak;
mod spread;
mod suite;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use load::Mode;
use sign::Preset;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Load generator and benchmarks for hookgate")]
struct Cli {
    /// Print the report as JSON on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send pre-signed webhooks to a running gateway and measure.
    Ingest(IngestArgs),
    /// Measure Postgres insert and Redis XADD rates on private tables and keys.
    Floor(FloorArgs),
    /// Measure delivery latency and throughput through a built-in sink (spawns hookgate).
    E2e(E2eArgs),
    /// Floor and ingest against gateways it spawns, repeated, with medians and ratios.
    Suite(SuiteArgs),
    /// CPU of an idle `hookgate run` cluster over a seeded backlog, and over none (spawns it).
    Idle(IdleArgs),
    /// A backlog drained by 1, 2, 4... worker processes, optionally through a destination
    /// `rate_limit` they must hold together (spawns them).
    Drain(DrainArgs),
    /// Ingest spread over 1, 2, 4... `hookgate receive` processes (spawns them).
    Spread(SpreadArgs),
    /// A long run through one `hookgate run`, ingest and delivery at once, in chunks (spawns it).
    Soak(SoakArgs),
}

#[derive(Args)]
struct IngestArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The source name in /webhooks/{source}.
    #[arg(long, default_value = "github")]
    source: String,
    /// How to sign: github, stripe, standard, shopify, slack, hmac.
    #[arg(long, default_value = "github", value_parser = parse_preset)]
    preset: Preset,
    #[arg(long, default_value = "demo-github-secret")]
    secret: String,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Body size, e.g. 1KiB, 16KiB, 256KiB.
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    size: usize,
    #[command(flatten)]
    mode: ModeArgs,
}

#[derive(Args)]
struct ModeArgs {
    /// Closed loop: this many requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open loop: this many requests per second, latency from each scheduled send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: requests outstanding at most (beyond, the schedule slips, counted as latency).
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
}

impl ModeArgs {
    fn mode(&self) -> anyhow::Result<Mode> {
        Ok(match self.rate {
            Some(rate) if rate > 0.0 => Mode::Open {
                rate,
                max_in_flight: self.max_in_flight,
            },
            Some(rate) => bail!("--rate must be above 0, not {rate}"),
            None => Mode::Closed {
                concurrency: self.concurrency,
            },
        })
    }
}

#[derive(Args, Clone)]
struct Backends {
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/hookgate_bench"
    )]
    database_url: String,
    /// One Redis server, or a cluster's nodes, comma-separated (`scripts/dev cluster` prints
    /// them).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Every Redis key the bench or its gateways touch starts with `<prefix>:` (`idle`:
    /// `<prefix>-idle-`).
    #[arg(long, default_value = "hgbench")]
    prefix: String,
}

#[derive(Args)]
struct FloorArgs {
    #[command(flatten)]
    backends: Backends,
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Rows per multi-row insert.
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Args, Clone)]
struct GatewayArgs {
    #[command(flatten)]
    backends: Backends,
    /// The hookgate binary to spawn.
    #[arg(long, default_value = "target/release/hookgate")]
    hookgate: PathBuf,
    /// How the spawned gateway's source signs.
    #[arg(long, default_value = "github", value_parser = parse_preset)]
    preset: Preset,
    /// HOOKGATE_LOG for the spawned gateway (unset: its default, `info`).
    #[arg(long)]
    gateway_log: Option<String>,
}

impl GatewayArgs {
    fn setup(&self) -> gateway::Setup {
        gateway::Setup {
            binary: self.hookgate.clone(),
            database_url: self.backends.database_url.clone(),
            redis_url: self.backends.redis_url.clone(),
            prefix: self.backends.prefix.clone(),
            preset: self.preset,
            log_filter: self.gateway_log.clone(),
            destination_keys: String::new(),
        }
    }
}

#[derive(Args)]
struct E2eArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Worker concurrencies to measure, e.g. 1,4,16.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    workers: Vec<usize>,
    #[arg(long, default_value_t = 300)]
    idle_count: usize,
    #[arg(long, default_value_t = 50.0)]
    idle_rate: f64,
    /// Events ingested before the worker starts, for the drain rate.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
    #[arg(long, default_value_t = 32)]
    ingest_concurrency: usize,
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    size: usize,
}

#[derive(Args)]
struct SuiteArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Requests per ingest run (and rows per floor measurement).
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Closed-loop concurrencies, each measured for the floor and for 1 KiB ingest.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    concurrency: Vec<usize>,
    /// Larger bodies, each measured at the first concurrency.
    #[arg(long, value_delimiter = ',', default_value = "16KiB", value_parser = parse_size)]
    sizes: Vec<usize>,
    /// Seconds of the open-loop run at half the best 1 KiB rate (0: skip it).
    #[arg(long, default_value_t = 20)]
    rate_seconds: u64,
    /// Runs of each measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Pending deliveries seeded for the backlog (one event each).
    #[arg(long, default_value_t = 1_000_000)]
    deliveries: u64,
    /// The share of them waiting for a retry in an hour; the rest are queued (due).
    #[arg(long, default_value_t = 0.5)]
    retry_share: f64,
    /// Open dead letters seeded for the backlog.
    #[arg(long, default_value_t = 100_000)]
    dead_letters: u64,
    /// Payload size of the seeded events.
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    size: usize,
    /// `hookgate run` processes: one leads, the others stand by.
    #[arg(long, default_value_t = 2)]
    processes: usize,
    /// Worker concurrency of each process (hookgate's default is 16).
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seconds between a leader being elected and the window.
    #[arg(long, default_value_t = 10)]
    warmup_seconds: u64,
    /// Seconds of each measurement.
    #[arg(long, default_value_t = 60)]
    window_seconds: u64,
    /// Rounds, each measuring the backlog and the empty cluster; medians are reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Keep the schemas and Redis keys afterwards (named on stderr), e.g. for EXPLAIN.
    #[arg(long)]
    keep: bool,
}

#[derive(Args)]
struct SpreadArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Receiver processes sharing the load evenly, one run per count.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    receivers: Vec<usize>,
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Requests in flight, over all receivers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    size: usize,
}

#[derive(Args)]
struct SoakArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Webhooks sent in the whole run.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Parts the run is measured in.
    #[arg(long, default_value_t = 10)]
    chunks: usize,
    /// Requests in flight (closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The gateway's `worker.concurrency`.
    #[arg(long, default_value_t = 256)]
    workers: usize,
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    size: usize,
}

#[derive(Args)]
struct DrainArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The destination's `rate_limit`, per second; none without it.
    #[arg(long)]
    rate: Option<u32>,
    /// `hookgate work` processes draining together, one run per count.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    processes: Vec<usize>,
    /// `worker.concurrency` of each.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Events in the backlog they drain.
    #[arg(long, default_value_t = 6000)]
    events: usize,
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    size: usize,
}

fn parse_preset(name: &str) -> Result<Preset, String> {
    Preset::parse(name).ok_or_else(|| {
        format!("unknown preset {name:?} (github, stripe, standard, shopify, slack, hmac)")
    })
}

fn parse_size(text: &str) -> Result<usize, String> {
    text.parse::<bytesize::ByteSize>()
        .map(|s| s.as_u64() as usize)
        .map_err(|e| format!("{text:?} is not a size like 16KiB: {e}"))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ingest(args) => {
            let mode = args.mode.mode()?;
            eprintln!("signing {} webhooks of {} bytes", args.count, args.size);
            let requests = load::prepare(args.preset, &args.secret, args.count, args.size);
            let url = format!(
                "{}/webhooks/{}",
                args.url.trim_end_matches('/'),
                args.source
            );
            let (report, _) = load::run(load::client()?, vec![url], requests, mode).await;
            report.print("ingest");
            if cli.json {
                print_json(&report)?;
            }
        }
        Command::Floor(args) => {
            let plan = floor::FloorPlan {
                database_url: args.backends.database_url,
                redis_url: args.backends.redis_url,
                prefix: args.backends.prefix,
                count: args.count,
                concurrency: args.concurrency,
                batch: args.batch,
            };
            let report = floor::run(&plan).await.context("floor")?;
            report.print();
            if cli.json {
                print_json(&report)?;
            }
        }
        Command::Spread(args) => {
            let plan = spread::SpreadPlan {
                receivers: args.receivers,
                count: args.count,
                concurrency: args.concurrency,
                size: args.size,
            };
            let reports = spread::run(&args.gateway.setup(), &plan)
                .await
                .context("spread")?;
            if cli.json {
                print_json(&reports)?;
            }
        }
        Command::Drain(args) => {
            let mut reports = Vec::new();
            for processes in args.processes {
                let plan = drain::DrainPlan {
                    rate: args.rate,
                    processes,
                    workers: args.workers,
                    events: args.events,
                    size: args.size,
                };
                let report = drain::run(&args.gateway.setup(), &plan)
                    .await
                    .context("drain")?;
                report.print();
                reports.push(report);
            }
            if cli.json {
                print_json(&reports)?;
            }
        }
        Command::Soak(args) => {
            let plan = soak::SoakPlan {
                count: args.count,
                chunks: args.chunks,
                concurrency: args.concurrency,
                workers: args.workers,
                size: args.size,
            };
            let report = soak::run(&args.gateway.setup(), &plan)
                .await
                .context("soak")?;
            if cli.json {
                print_json(&report)?;
            }
        }
        Command::E2e(args) => {
            let plan = e2e::E2ePlan {
                workers: args.workers,
                idle_count: args.idle_count,
                idle_rate: args.idle_rate,
                backlog: args.backlog,
                ingest_concurrency: args.ingest_concurrency,
                size: args.size,
            };
            let reports = e2e::run(&args.gateway.setup(), &plan)
                .await
                .context("e2e")?;
            if cli.json {
                print_json(&reports)?;
            }
        }
        Command::Suite(args) => {
            let plan = suite::SuitePlan {
                count: args.count,
                concurrency: args.concurrency,
                sizes: args.sizes,
                rate_seconds: args.rate_seconds,
                repeat: args.repeat.max(1),
                batch: args.batch,
            };
            let report = suite::run(&args.gateway.setup(), &plan)
                .await
                .context("suite")?;
            report.print();
            if cli.json {
                print_json(&report)?;
            }
        }
        Command::Idle(args) => {
            let plan = idle::IdlePlan {
                deliveries: args.deliveries,
                retry_share: args.retry_share,
                dead_letters: args.dead_letters,
                size: args.size,
                processes: args.processes,
                workers: args.workers,
                warmup: std::time::Duration::from_secs(args.warmup_seconds),
                window: std::time::Duration::from_secs(args.window_seconds.max(1)),
                repeat: args.repeat.max(1),
                keep: args.keep,
            };
            let report = idle::run(&args.gateway.setup(), &plan)
                .await
                .context("idle")?;
            report.print();
            if cli.json {
                print_json(&report)?;
            }
        }
    }
    Ok(())
}
