use clap::{Parser, Subcommand};
use hookgate::app::{Gateway, Roles};
use hookgate::cli::dlq::DlqCommand;
use hookgate::cli::events::EventsCommand;
use hookgate::config::{Config, DATABASE_URL_ENV, REDIS_URL_ENV, Target};
use hookgate::redact;
use hookgate::store::Store;
use hookgate::telemetry::{self, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

/// Webhook receiver gateway: verify, dedup in Postgres, queue on Redis Streams, deliver.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "HOOKGATE_CONFIG",
        default_value = "hookgate.toml"
    )]
    config: PathBuf,
    /// Log line format (stderr).
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process: receiver, worker and admin listener (migrates first).
    Run,
    /// Run only the webhook receiver and the admin listener (scale receivers out).
    Receive,
    /// Run only the worker: deliveries, retries, reclaims and the scheduler.
    Work,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, list every problem, and exit.
    CheckConfig,
    /// Inspect, replay and purge dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// What happened to events: list them, or show one destination by destination.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Who did what: the operators' replays, redeliveries, deletes, purges and cancels.
    AdminActions {
        #[command(subcommand)]
        command: hookgate::cli::admin_actions::AdminActionsCommand,
    },
    /// Destinations' state, breakers and backlogs; pause and resume one.
    Destinations {
        #[command(subcommand)]
        command: hookgate::cli::destinations::DestinationsCommand,
    },
    /// Follow changes of events and deliveries as they happen, one line each.
    Tail(hookgate::cli::tail::TailArgs),
    /// Delete what retention no longer keeps, now (`run`), or show what would go (`--dry-run`).
    Retention {
        #[command(subcommand)]
        command: hookgate::cli::retention::RetentionCommand,
    },
    /// Sign a webhook as the source's provider does and post it to the gateway.
    Send(hookgate::cli::send::SendArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Run | Command::Receive | Command::Work | Command::Migrate
    ) {
        end_quietly_on_a_closed_pipe();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookgate: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// A command whose output goes into `| head` or `| grep -q` ends quietly when the reader
/// leaves, as other Unix tools do, instead of panicking in `println!`: Rust ignores SIGPIPE
/// unless told otherwise. The servers keep ignoring it (a peer closing a socket must not end
/// them), so this is for the operator commands only.
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: called before any other thread exists; it only restores the default action of
    // one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes, each said once: sqlx's errors repeat their source's message in
/// their own, so `{:#}` would print "pool timed out ...: pool timed out ..." and the like.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    if let Command::CheckConfig = cli.command {
        print_summary(&cli.config, &config);
        return Ok(());
    }
    if !matches!(
        cli.command,
        Command::Dlq { .. }
            | Command::Events { .. }
            | Command::AdminActions { .. }
            | Command::Destinations { .. }
            | Command::Tail(_)
            | Command::Send(_)
    ) {
        telemetry::init_tracing(cli.log_format);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let roles = match cli.command {
            Command::Run => Roles::ALL,
            Command::Receive => Roles::RECEIVER,
            Command::Work => Roles::WORKER,
            Command::Migrate => {
                let store = Store::connect_lazy(&config.database_url, 1)?;
                store.migrate().await?;
                println!("migrations applied");
                return Ok(());
            }
            Command::Dlq { command } => return hookgate::cli::dlq::run(&config, command).await,
            Command::Events { command } => {
                return hookgate::cli::events::run(&config, command).await;
            }
            Command::AdminActions { command } => {
                return hookgate::cli::admin_actions::run(&config, command).await;
            }
            Command::Destinations { command } => {
                return hookgate::cli::destinations::run(&config, command).await;
            }
            Command::Tail(args) => return hookgate::cli::tail::run(&config, args).await,
            Command::Retention { command } => {
                return hookgate::cli::retention::run(&config, command).await;
            }
            Command::Send(args) => return hookgate::cli::send::run(&config, args).await,
            Command::CheckConfig => unreachable!("handled before the runtime starts"),
        };
        let gateway = Gateway::start(config, roles).await?;
        let stop = gateway.shutdown_token();
        tokio::spawn(async move {
            hookgate::shutdown::signalled().await;
            stop.cancel();
        });
        gateway.wait().await
    })
}

fn print_summary(path: &std::path::Path, config: &Config) {
    println!("{} is valid", path.display());
    println!(
        "  listen {} (webhooks), admin {}",
        config.listen, config.admin_listen
    );
    // The environment wins over the file (Config::parse); say which one each URL came from.
    for (name, url, variable) in [
        (
            "database",
            redact::url(&config.database_url),
            DATABASE_URL_ENV,
        ),
        ("redis", config.redis_url.redacted(), REDIS_URL_ENV),
    ] {
        let origin = match std::env::var(variable) {
            Ok(value) if !value.is_empty() => variable.to_string(),
            _ => "the file".to_string(),
        };
        println!("  {name} {url} (from {origin})");
    }
    for source in &config.sources {
        let destinations: Vec<String> = source
            .destinations
            .iter()
            .map(|d| match &d.target {
                Target::Http { url, .. } => format!("{} -> {}", d.name, redact::url(url)),
                Target::Stream { key, .. } => format!("{} -> stream {key}", d.name),
            })
            .collect();
        println!(
            "  source {:<12} provider {:<8} max body {}, {} attempts, destinations: {}",
            source.name,
            source.provider.as_str(),
            bytesize::ByteSize(source.max_body as u64).display().iec(),
            source.retry.max_attempts,
            if destinations.is_empty() {
                "none".to_string()
            } else {
                destinations.join(", ")
            }
        );
    }
}
