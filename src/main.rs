use clap::{Parser, Subcommand};
use hookgate::app::Gateway;
use hookgate::config::Config;
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
    /// Run the gateway: webhook receiver and admin listener (migrates first).
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, list every problem, and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    if let Command::CheckConfig = cli.command {
        print_summary(&cli.config, &config);
        return Ok(());
    }
    telemetry::init_tracing(cli.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Run => {
                let gateway = Gateway::start(config).await?;
                let stop = gateway.shutdown_token();
                tokio::spawn(async move {
                    hookgate::shutdown::signalled().await;
                    stop.cancel();
                });
                gateway.wait().await
            }
            Command::Migrate => {
                let store = Store::connect_lazy(&config.database_url, 1)?;
                store.migrate().await?;
                println!("migrations applied");
                Ok(())
            }
            Command::CheckConfig => unreachable!("handled before the runtime starts"),
        }
    })
}

fn print_summary(path: &std::path::Path, config: &Config) {
    println!("{} is valid", path.display());
    println!(
        "  listen {} (webhooks), admin {}",
        config.listen, config.admin_listen
    );
    for source in &config.sources {
        println!(
            "  source {:<16} provider {:?}, max body {} bytes",
            source.name, source.provider, source.max_body
        );
    }
}
