//! `hookgate destinations list|pause|resume`: the destinations from a shell, as
//! `GET /v1/destinations` and its pause and resume routes show and change them.

use super::args::{columns, one_line, print_json};
use crate::config::Config;
use crate::store::Store;
use crate::store::admin_actions::Actor;
use crate::store::destinations::{Changed, DestinationStatus, ThrottleStatus};
use crate::store::routes::Routes;
use anyhow::Context;
use clap::Subcommand;

/// Width of the last-error column.
const ERROR_WIDTH: usize = 60;

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Every source's destinations: state (paused, or the breaker's closed, open, half_open),
    /// pending deliveries, the oldest one's age and the last error.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Pause a destination: its deliveries wait, and its backlog grows, until it is resumed.
    Pause { source: String, name: String },
    /// Resume a paused destination: what waited is delivered in order of arrival.
    Resume { source: String, name: String },
}

pub async fn run(config: &Config, command: DestinationsCommand) -> anyhow::Result<()> {
    let store = Store::connect_lazy(&config.database_url, 1)?;
    store.migrate().await.context("migrating the database")?;
    let routes = Routes::new(config);
    let (changed, source, name, done) = match command {
        DestinationsCommand::List { json } => {
            let rows = store.list_destinations(&routes).await?;
            if json {
                return print_json(&rows);
            }
            print!("{}", table(&rows));
            return Ok(());
        }
        DestinationsCommand::Pause { source, name } => {
            let changed = store.pause(&routes, &source, &name, &Actor::cli()).await?;
            (changed, source, name, "paused")
        }
        DestinationsCommand::Resume { source, name } => {
            let changed = store.resume(&routes, &source, &name, &Actor::cli()).await?;
            (changed, source, name, "resumed")
        }
    };
    match changed {
        Changed::Yes => println!("{source}/{name} {done}"),
        Changed::AlreadyThere => println!("{source}/{name} was already {done}: nothing changed"),
    }
    Ok(())
}

/// `50/s`, `4 in flight`, both, or `-`.
fn throttle(t: &ThrottleStatus) -> String {
    let parts: Vec<String> = [
        t.rate_limit.clone(),
        t.max_in_flight.map(|n| format!("{n} in flight")),
    ]
    .into_iter()
    .flatten()
    .collect();
    match parts.is_empty() {
        true => "-".to_string(),
        false => parts.join(", "),
    }
}

/// Aligned columns, a header, one line per destination.
fn table(rows: &[DestinationStatus]) -> String {
    let mut lines = vec![
        [
            "SOURCE",
            "DESTINATION",
            "STATE",
            "FAILURES",
            "THROTTLE",
            "PENDING",
            "OLDEST",
            "LAST ERROR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    lines.extend(rows.iter().map(|d| {
        vec![
            d.source.clone(),
            d.destination.clone(),
            d.state.clone(),
            d.breaker.failures.to_string(),
            throttle(&d.throttle),
            format!("{}{}", d.pending, if d.pending_more { "+" } else { "" }),
            (d.oldest_pending_age_seconds).map_or("-".to_string(), |s| format!("{s:.0}s")),
            one_line(d.last_error.as_deref().unwrap_or("-"), ERROR_WIDTH),
        ]
    }));
    columns(&lines)
}
