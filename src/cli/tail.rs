//! `hookgate tail`: the live status stream in a terminal, one line per change, for operators
//! on a server without a browser.

use super::args::{one_line, rfc3339};
use crate::config::Config;
use crate::live::{Ended, Filter, Hub, Limits};
use crate::store::Store;
use crate::store::transitions::{Change, Kind, Scope};
use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Width of an error in a line.
const ERROR_WIDTH: usize = 80;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Only this source's changes.
    #[arg(long)]
    source: Option<String>,
    /// Only changes of this destination's deliveries.
    #[arg(long)]
    destination: Option<String>,
    /// Only these kinds, comma-separated: received, attempt_failed, delivered, dead_lettered,
    /// replayed, redelivered.
    #[arg(long)]
    status: Option<String>,
}

pub async fn run(config: &Config, args: TailArgs) -> anyhow::Result<()> {
    let kinds = match args.status.as_deref() {
        Some(text) => Filter::parse_kinds(text)?,
        None => Vec::new(),
    };
    let filter = Filter {
        scope: Scope {
            event_id: None,
            source: args.source,
            destination: args.destination,
        },
        kinds,
    };
    let store = Store::connect_lazy(&config.database_url, 2)?;
    store.migrate().await.context("migrating the database")?;
    let shutdown = CancellationToken::new();
    let (hub, task) = Hub::spawn(store, Limits::default(), shutdown.clone());
    let mut from = hub.now().await.context("reading the stream's position")?;
    eprintln!("hookgate tail: following changes from {from} (Ctrl-C to stop)");
    let mut subscription = hub.subscribe(filter.clone(), from);
    loop {
        let next = tokio::select! {
            () = crate::shutdown::signalled() => break,
            next = subscription.next() => next,
        };
        match next {
            Ok(Some(change)) => {
                from = change.position;
                println!("{}", line(&change));
            }
            Ok(None) => break,
            // The terminal was slower than the gateway: pick up where it stopped.
            Err(Ended::FellBehind) => subscription = hub.subscribe(filter.clone(), from),
            Err(Ended::Store(error)) => return Err(error).context("reading changes"),
        }
    }
    shutdown.cancel();
    task.await?;
    Ok(())
}

/// `<time>  <kind>  <source>  <event>  <destination or ->  <details>`.
fn line(change: &Change) -> String {
    let details = match change.kind {
        Kind::AttemptFailed | Kind::DeadLettered if change.destination.is_some() => {
            let answer = match change.status_code {
                Some(status) => format!("HTTP {status}"),
                None => "no answer".to_string(),
            };
            let error = one_line(
                change.error.as_deref().unwrap_or(&change.reason),
                ERROR_WIDTH,
            );
            let next = match change.next_attempt_at {
                Some(at) => format!("; next attempt at {}", rfc3339(at)),
                None => String::new(),
            };
            let attempt = change.attempt.unwrap_or_default();
            format!("attempt {attempt}, {answer}: {error}{next}")
        }
        _ => change.reason.clone(),
    };
    format!(
        "{}  {:<14}  {}  {}  {}  {}",
        rfc3339(change.at),
        change.kind.as_str(),
        change.source,
        change.event_id,
        change.destination.as_deref().unwrap_or("-"),
        details
    )
}
