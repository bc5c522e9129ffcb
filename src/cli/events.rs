//! `hookgate events list|show|redeliver`: the status resource from a shell, for operators with
//! database access but no admin token at hand.

use super::args::{self, Window, columns, one_line, print_json, rfc3339};
use crate::config::Config;
use crate::event_type::EventPattern;
use crate::queue::stream::Streams;
use crate::replay::Replayer;
use crate::store::Store;
use crate::store::admin_actions::Actor;
use crate::store::status::{EventFilter, EventStatus, EventSummary};
use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;

/// `last error` column width in `show`.
const ERROR_WIDTH: usize = 60;
const STATUSES: [&str; 3] = ["pending", "delivered", "dead_lettered"];

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events, newest first.
    List {
        #[arg(long)]
        source: Option<String>,
        /// The provider's id of the event (exact match).
        #[arg(long)]
        external_id: Option<String>,
        /// The event type (exact match), or a prefix ending in `*` (invoice.*).
        #[arg(long, value_parser = event_type)]
        event_type: Option<String>,
        /// pending, delivered or dead_lettered.
        #[arg(long, value_parser = STATUSES)]
        status: Option<String>,
        /// Received at or after: an RFC 3339 time (2026-11-23T10:00:00Z) or an age (24h, 30m).
        #[arg(long)]
        since: Option<String>,
        /// Received before: an RFC 3339 time or an age.
        #[arg(long)]
        until: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// What happened to one event, destination by destination.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Sends an event again to destinations it was delivered to (or dead-lettered for), with
    /// the same webhook-id; prints its new states.
    Redeliver {
        id: String,
        /// Only this destination (repeatable); every destination of the event without one.
        #[arg(long = "destination")]
        destinations: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let store = Store::connect_lazy(&config.database_url, 1)?;
    // What the operator typed is checked before the database is touched.
    let connect = || async { store.migrate().await.context("migrating the database") };
    match command {
        EventsCommand::List {
            source,
            external_id,
            event_type,
            status,
            since,
            until,
            limit,
            json,
        } => {
            let window = Window::parse(since.as_deref(), until.as_deref(), Utc::now())?;
            let filter = EventFilter {
                source,
                external_id,
                event_type,
                status,
                since: window.since,
                until: window.until,
            };
            connect().await?;
            let events = store.list_events(&filter, None, limit).await?;
            if json {
                return print_json(&events);
            }
            print!("{}", table(&events));
            println!("{} event(s)", events.len());
            Ok(())
        }
        EventsCommand::Show { id, json } => {
            let id = args::id("an event", &id)?;
            connect().await?;
            let status = store
                .event_status(id)
                .await?
                .with_context(|| format!("no event {id}"))?;
            if json {
                return print_json(&status);
            }
            print!("{}", describe(&status));
            Ok(())
        }
        EventsCommand::Redeliver {
            id,
            destinations,
            json,
        } => {
            let id = args::id("an event", &id)?;
            connect().await?;
            let streams = Streams::new(&config.redis_url, &config.stream_prefix)?;
            let replayer = Replayer::new(config, store.clone(), streams);
            let chosen = (!destinations.is_empty()).then_some(destinations.as_slice());
            let (redelivered, enqueued) = replayer.redeliver(id, chosen, &Actor::cli()).await?;
            if !enqueued {
                eprintln!(
                    "warning: the event could not be queued on Redis ({}); \
                     the scheduler will queue it",
                    replayer.queue_error().unwrap_or_default()
                );
            }
            let status = store
                .event_status(id)
                .await?
                .with_context(|| format!("no event {id}"))?;
            if json {
                return print_json(&status);
            }
            match redelivered.destinations.as_slice() {
                [] => println!("nothing to redeliver: every chosen delivery is still pending"),
                names => println!("redelivering to {}", names.join(", ")),
            }
            print!("{}", describe(&status));
            Ok(())
        }
    }
}

fn event_type(text: &str) -> Result<String, String> {
    EventPattern::parse(text)
        .map(|_| text.to_string())
        .map_err(str::to_string)
}

fn table(events: &[EventSummary]) -> String {
    let mut lines = vec![
        ["ID", "RECEIVED", "SOURCE", "TYPE", "STATUS", "EXTERNAL ID"]
            .map(String::from)
            .to_vec(),
    ];
    lines.extend(events.iter().map(|e| {
        vec![
            e.id.to_string(),
            rfc3339(e.received_at),
            e.source.clone(),
            e.event_type.clone().unwrap_or_else(|| "-".to_string()),
            e.status.clone(),
            e.external_id.clone(),
        ]
    }));
    columns(&lines)
}

fn describe(status: &EventStatus) -> String {
    let e = &status.event;
    let mut out = format!(
        "id:           {}\nsource:       {}\nexternal id:  {}\ntype:         {}\nreceived:     {}\nstatus:       {}\n",
        e.id,
        e.source,
        e.external_id,
        e.event_type.as_deref().unwrap_or("-"),
        rfc3339(e.received_at),
        e.status
    );
    let mut lines = vec![
        [
            "DESTINATION",
            "STATE",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "LAST STATUS",
            "LAST ERROR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    lines.extend(status.deliveries.iter().map(|d| {
        vec![
            d.destination.clone(),
            d.state.clone(),
            format!("{}/{}", d.attempts, d.max_attempts),
            d.next_attempt_at.map_or("-".to_string(), rfc3339),
            d.last_status.map_or("-".to_string(), |s| s.to_string()),
            d.last_error
                .as_deref()
                .map_or("-".to_string(), |e| one_line(e, ERROR_WIDTH)),
        ]
    }));
    match lines.len() {
        1 => out.push_str("no deliveries: no destination of its source takes this event\n"),
        _ => {
            out.push('\n');
            out.push_str(&columns(&lines));
        }
    }
    for link in &status.dead_letters {
        out.push_str(&format!(
            "dead letter:  {} (hookgate dlq show {})\n",
            link.id, link.id
        ));
    }
    out
}
