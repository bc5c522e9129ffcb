//! `hookgate admin-actions list`: the operators' audit log from a shell, as
//! `GET /v1/admin-actions` shows it.

use super::args::{Window, columns, one_line, print_json, rfc3339};
use crate::config::Config;
use crate::store::Store;
use crate::store::admin_actions::{Action, AdminAction, AdminActionFilter};
use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use serde_json::Value;

/// Width of the target and outcome columns: enough for a filter or a few ids.
const JSON_WIDTH: usize = 60;

#[derive(Debug, Subcommand)]
pub enum AdminActionsCommand {
    /// Operator actions, newest first: who replayed, redelivered, deleted, purged or cancelled
    /// what, through the admin API (a token's name) or the CLI (cli:<user>).
    List {
        /// replay, redeliver, delete, purge, cancel, pause or resume.
        #[arg(long, value_parser = parse_action)]
        action: Option<Action>,
        /// A token's name, or cli:<user> (exact match).
        #[arg(long)]
        actor: Option<String>,
        /// Done at or after: an RFC 3339 time (2026-11-23T10:00:00Z) or an age (24h, 30m).
        #[arg(long)]
        since: Option<String>,
        /// Done before: an RFC 3339 time or an age.
        #[arg(long)]
        until: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

fn parse_action(text: &str) -> Result<Action, String> {
    Action::parse(text).ok_or_else(|| format!("must be one of {}", Action::names()))
}

pub async fn run(config: &Config, command: AdminActionsCommand) -> anyhow::Result<()> {
    let AdminActionsCommand::List {
        action,
        actor,
        since,
        until,
        limit,
        json,
    } = command;
    // What the operator typed is checked before the database is touched.
    let window = Window::parse(since.as_deref(), until.as_deref(), Utc::now())?;
    let filter = AdminActionFilter {
        action,
        actor,
        since: window.since,
        until: window.until,
    };
    let store = Store::connect_lazy(&config.database_url, 1)?;
    store.migrate().await.context("migrating the database")?;
    // One more than asked tells whether there are others.
    let mut rows = store.list_admin_actions(&filter, None, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if json {
        return print_json(&rows);
    }
    print!("{}", table(&rows));
    println!("{} action(s)", rows.len());
    if more {
        eprintln!("(more match: narrow with --since/--until or raise --limit, at most 1000)");
    }
    Ok(())
}

/// Aligned columns, a header, one line per action; empty for no rows.
fn table(rows: &[AdminAction]) -> String {
    let mut lines = vec![
        ["AT", "ACTOR", "ACTION", "TARGET", "OUTCOME"]
            .map(String::from)
            .to_vec(),
    ];
    lines.extend(rows.iter().map(|a| {
        vec![
            rfc3339(a.at),
            a.actor.clone(),
            a.action.clone(),
            one_line(&summary(&a.target.0), JSON_WIDTH),
            one_line(&summary(&a.outcome.0), JSON_WIDTH),
        ]
    }));
    columns(&lines)
}

/// An object as `key=value` pairs, counts and names before lists, so that what a cut line
/// keeps is what says most (`deleted=2 dead_letters=[...]`); strings without their quotes.
fn summary(value: &Value) -> String {
    let Value::Object(fields) = value else {
        return value.to_string();
    };
    let (scalars, nested): (Vec<_>, Vec<_>) = fields
        .iter()
        .partition(|(_, v)| !v.is_array() && !v.is_object());
    let show = |v: &Value| match v {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    scalars
        .into_iter()
        .chain(nested)
        .map(|(key, v)| format!("{key}={}", show(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sqlx::types::Json;

    #[test]
    fn a_line_shows_who_did_what_with_long_json_cut() {
        let action = AdminAction {
            id: uuid::Uuid::nil(),
            at: "2026-11-23T10:00:00Z".parse().unwrap(),
            actor: "cli:alice".into(),
            action: "purge".into(),
            target: Json(json!({"filter": {"source": "github"}})),
            outcome: Json(json!({"deleted": 2, "dead_letters": ["0".repeat(36), "1".repeat(36)]})),
        };
        let text = table(&[action]);
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.starts_with(
                "2026-11-23T10:00:00Z  cli:alice  purge   filter={\"source\":\"github\"}  \
                 deleted=2 dead_letters=[\"000"
            ),
            "{text}"
        );
        assert!(line.ends_with('…'), "{line}");
        assert_eq!(table(&[]), "");
    }

    #[test]
    fn a_summary_puts_counts_and_names_before_lists() {
        let outcome = json!({"redelivered": ["ci"], "event": "e1", "destinations": null});
        assert_eq!(
            summary(&outcome),
            "destinations=null event=e1 redelivered=[\"ci\"]"
        );
        assert_eq!(summary(&json!([1])), "[1]");
    }

    #[test]
    fn an_unknown_action_names_the_known_ones() {
        assert_eq!(parse_action("cancel"), Ok(Action::Cancel));
        assert!(
            parse_action("undo")
                .unwrap_err()
                .contains("replay, redeliver")
        );
    }
}
