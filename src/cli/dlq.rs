//! Dead letters: listing, inspecting, replaying and purging them.
//! `hookgate dlq list|show|replay|purge`.

use super::args::{self, ArgError, Window, columns, one_line, print_json, rfc3339};
use crate::config::Config;
use crate::queue::stream::Streams;
use crate::replay::Replayer;
use crate::store::Store;
use crate::store::admin_actions::{Action, Actor};
use crate::store::dead_letters::{BATCH, DeadLetter, DeadLetterFilter, DeadLetterSummary};
use anyhow::Context;
use base64::Engine;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use std::collections::HashMap;
use uuid::Uuid;

/// A `--json` answer to a bulk replay or purge lists at most this many ids.
const MAX_LISTED_IDS: usize = 1000;
/// `last error` column width in `list`.
const ERROR_WIDTH: usize = 60;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters, newest first (only those not yet replayed, unless --include-replayed).
    List {
        #[command(flatten)]
        filters: Filters,
        /// Also dead letters already replayed.
        #[arg(long)]
        include_replayed: bool,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Everything about one dead letter, with its event and payload.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Give dead letters' deliveries a fresh attempt budget and queue their events again.
    Replay {
        /// Dead letter ids.
        #[arg(required_unless_present = "all", conflicts_with_all = ["all", "Filters"])]
        ids: Vec<String>,
        /// Every dead letter not yet replayed that matches the filters (all of them without one).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filters: Filters,
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters (their deliveries stay dead).
    Purge {
        /// Dead letter ids.
        #[arg(required_unless_present = "all", conflicts_with_all = ["all", "Filters", "include_replayed"])]
        ids: Vec<String>,
        /// Every dead letter not yet replayed that matches the filters.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filters: Filters,
        /// With --all: also dead letters already replayed.
        #[arg(long)]
        include_replayed: bool,
        /// Confirm `--all` without any filter: every dead letter is deleted.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
}

/// Which dead letters: all filters must match.
#[derive(Debug, Args)]
pub struct Filters {
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    destination: Option<String>,
    /// Created at or after: an RFC 3339 time (2026-11-23T10:00:00Z) or an age (24h, 30m).
    #[arg(long)]
    since: Option<String>,
    /// Created before: an RFC 3339 time or an age.
    #[arg(long)]
    until: Option<String>,
}

/// Operator mistakes, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error(transparent)]
    Arg(#[from] ArgError),
    #[error(
        "purge --all without a filter deletes every dead letter: add --yes to confirm, \
         or narrow it with --source, --destination, --since or --until"
    )]
    PurgeEverythingUnconfirmed,
    #[error("{0} dead letter(s) not replayed: their source or destination is no longer configured")]
    Unroutable(usize),
}

pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let now = Utc::now();
    let store = Store::connect_lazy(&config.database_url, 2)?;
    // What the operator typed is checked before the database is touched.
    let connect = || async { store.migrate().await.context("migrating the database") };
    match command {
        DlqCommand::List {
            filters,
            include_replayed,
            limit,
            json,
        } => {
            let filter = filters.resolve(include_replayed, now)?;
            connect().await?;
            list(&store, &filter, limit, json).await
        }
        DlqCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            connect().await?;
            show(&store, id, json).await
        }
        DlqCommand::Replay {
            ids,
            all,
            filters,
            json,
        } => {
            let target = if all {
                Target::Matching(filters.resolve(false, now)?)
            } else {
                Target::Ids(parse_ids(&ids)?)
            };
            connect().await?;
            replay(config, &store, target, json).await
        }
        DlqCommand::Purge {
            ids,
            all,
            filters,
            include_replayed,
            yes,
            json,
        } => {
            let target = if all {
                let filter = filters.resolve(include_replayed, now)?;
                if filter.is_unfiltered() && !yes {
                    return Err(DlqError::PurgeEverythingUnconfirmed.into());
                }
                Target::Matching(filter)
            } else {
                Target::Ids(parse_ids(&ids)?)
            };
            connect().await?;
            purge(&store, target, json).await
        }
    }
}

enum Target {
    Ids(Vec<Uuid>),
    Matching(DeadLetterFilter),
}

impl Filters {
    fn resolve(
        self,
        include_replayed: bool,
        now: DateTime<Utc>,
    ) -> Result<DeadLetterFilter, DlqError> {
        let window = Window::parse(self.since.as_deref(), self.until.as_deref(), now)?;
        Ok(DeadLetterFilter {
            source: self.source,
            destination: self.destination,
            since: window.since,
            until: window.until,
            include_replayed,
        })
    }
}

fn parse_id(text: &str) -> Result<Uuid, DlqError> {
    Ok(args::id("a dead letter", text)?)
}

/// Parsed, without duplicates, in the order given.
fn parse_ids(texts: &[String]) -> Result<Vec<Uuid>, DlqError> {
    let mut ids = Vec::with_capacity(texts.len());
    for text in texts {
        let id = parse_id(text)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

async fn list(
    store: &Store,
    filter: &DeadLetterFilter,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    // One more than asked tells whether there are others.
    let mut rows = store.list_dead_letters(filter, None, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if json {
        return print_json(&rows);
    }
    print!("{}", table(&rows, filter.include_replayed));
    println!("{} dead letter(s)", rows.len());
    if more {
        eprintln!("(more match: narrow with --since/--until or raise --limit, at most 1000)");
    }
    Ok(())
}

/// Aligned columns, a header, one line per dead letter; empty for no rows. With `replayed`,
/// a column says when each was replayed.
fn table(rows: &[DeadLetterSummary], replayed: bool) -> String {
    let mut header = vec!["ID", "CREATED", "SOURCE", "DESTINATION", "ATTEMPTS", "KIND"];
    if replayed {
        header.push("REPLAYED");
    }
    header.extend(["LAST STATUS", "LAST ERROR"]);
    let mut lines = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for row in rows {
        let mut line = vec![
            row.id.to_string(),
            rfc3339(row.created_at),
            row.source.clone(),
            row.destination.clone(),
            row.attempts.to_string(),
            row.failure_kind.clone(),
        ];
        if replayed {
            line.push(row.replayed_at.map_or("-".to_string(), rfc3339));
        }
        line.push(row.last_status.map_or("-".to_string(), |s| s.to_string()));
        line.push(
            row.last_error
                .as_deref()
                .map_or("-".to_string(), |e| one_line(e, ERROR_WIDTH)),
        );
        lines.push(line);
    }
    columns(&lines)
}

async fn show(store: &Store, id: Uuid, json: bool) -> anyhow::Result<()> {
    let letter = store.dead_letter(id).await?;
    if json {
        return print_json(&letter);
    }
    print!("{}", describe(&letter));
    Ok(())
}

fn describe(letter: &DeadLetter) -> String {
    let s = &letter.summary;
    let time = |t: Option<DateTime<Utc>>| t.map_or("-".to_string(), rfc3339);
    let fields = [
        ("id", s.id.to_string()),
        ("event", s.event_id.to_string()),
        ("external id", letter.external_id.clone()),
        ("received", rfc3339(letter.received_at)),
        ("event status", letter.event_status.clone()),
        ("source", s.source.clone()),
        ("destination", s.destination.clone()),
        ("attempts", s.attempts.to_string()),
        ("failure kind", s.failure_kind.clone()),
        (
            "last status",
            s.last_status.map_or("-".to_string(), |v| v.to_string()),
        ),
        (
            "last error",
            s.last_error.clone().unwrap_or("-".to_string()),
        ),
        ("first attempt", time(s.first_attempt_at)),
        ("last attempt", time(s.last_attempt_at)),
        ("created", rfc3339(s.created_at)),
        (
            "replayed",
            s.replayed_at.map_or("not yet".to_string(), rfc3339),
        ),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!("{:<15}{value}\n", format!("{name}:")));
    }
    let size = letter.payload.len();
    match std::str::from_utf8(&letter.payload) {
        Ok(text) => {
            out.push_str(&format!("payload ({size} bytes):\n{text}"));
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&letter.payload);
            out.push_str(&format!(
                "payload ({size} bytes, not UTF-8, shown as base64):\n{encoded}\n"
            ));
        }
    }
    out
}

/// Collects the ids a bulk operation handled, keeping the first [`MAX_LISTED_IDS`].
#[derive(Default)]
struct Tally {
    count: usize,
    ids: Vec<Uuid>,
}

impl Tally {
    fn add(&mut self, ids: &[Uuid]) {
        self.count += ids.len();
        let room = MAX_LISTED_IDS.saturating_sub(self.ids.len());
        self.ids.extend(ids.iter().take(room));
    }

    /// `{"<verb>": count, "ids": [...], "ids_omitted": n}`: the `--json` answer.
    fn print_json(self, verb: &'static str) -> anyhow::Result<()> {
        #[derive(serde::Serialize)]
        struct Answer {
            #[serde(flatten)]
            count: HashMap<&'static str, usize>,
            ids: Vec<Uuid>,
            /// Ids left out of `ids`, beyond the first 1000.
            ids_omitted: usize,
        }
        print_json(&Answer {
            count: HashMap::from([(verb, self.count)]),
            ids_omitted: self.count - self.ids.len(),
            ids: self.ids,
        })
    }
}

async fn replay(config: &Config, store: &Store, target: Target, json: bool) -> anyhow::Result<()> {
    let streams = Streams::new(&config.redis_url, &config.stream_prefix)?;
    let replayer = Replayer::new(config, store.clone(), streams);
    let actor = Actor::cli();
    let mut not_enqueued = 0;
    let mut tally = Tally::default();
    let mut without_dead_delivery = 0;
    let mut skipped = 0;
    let mut unroutable = 0;
    match target {
        Target::Ids(ids) => {
            store
                .check_dead_letters(&ids, Some(replayer.routes()))
                .await?;
            for chunk in ids.chunks(BATCH) {
                let replayed = replayer.ids(chunk, &actor).await?;
                not_enqueued += replayed.not_enqueued;
                let batch = replayed.batch;
                skipped += chunk.len() - batch.replayed.len();
                without_dead_delivery += batch.without_dead_delivery;
                tally.add(&batch.replayed);
            }
        }
        Target::Matching(filter) => {
            if filter.is_unfiltered() {
                eprintln!("no filter given: replaying every dead letter not yet replayed");
            }
            let mut after = None;
            loop {
                let replayed = replayer.matching(&filter, after, &actor).await?;
                not_enqueued += replayed.not_enqueued;
                let batch = replayed.batch;
                without_dead_delivery += batch.without_dead_delivery;
                unroutable += batch.unroutable.len();
                tally.add(&batch.replayed);
                match batch.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    if not_enqueued > 0 {
        eprintln!(
            "warning: {not_enqueued} replayed event(s) could not be queued on Redis ({}); \
             the scheduler will enqueue them, as it does every due pending delivery",
            replayer.queue_error().unwrap_or_default(),
        );
    }
    if skipped > 0 {
        eprintln!("note: {skipped} dead letter(s) were replayed meanwhile by someone else");
    }
    if without_dead_delivery > 0 {
        eprintln!(
            "note: {without_dead_delivery} dead letter(s) had no dead delivery left to revive \
             (it was already pending or delivered); they are marked replayed"
        );
    }
    if json {
        tally.print_json("replayed")?;
    } else {
        println!("replayed {} dead letter(s)", tally.count);
    }
    match unroutable {
        0 => Ok(()),
        n => Err(DlqError::Unroutable(n).into()),
    }
}

async fn purge(store: &Store, target: Target, json: bool) -> anyhow::Result<()> {
    let actor = Actor::cli();
    let mut tally = Tally::default();
    match target {
        Target::Ids(ids) => {
            store.check_dead_letters(&ids, None).await?;
            for chunk in ids.chunks(BATCH) {
                tally.add(
                    &store
                        .purge_dead_letters(chunk, &actor, Action::Purge)
                        .await?,
                );
            }
        }
        Target::Matching(filter) => {
            let mut after = None;
            loop {
                let batch = store
                    .purge_dead_letters_matching(&filter, after, &actor)
                    .await?;
                tally.add(&batch.purged);
                match batch.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    if json {
        return tally.print_json("purged");
    }
    println!("purged {} dead letter(s)", tally.count);
    Ok(())
}
