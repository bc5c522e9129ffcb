//! `hookgate retention run [--dry-run]`: a retention pass now, from a shell.

use super::args::columns;
use crate::config::Config;
use crate::retention::{self, Policy};
use crate::store::Store;
use crate::store::retention::Deleted;
use anyhow::Context;
use clap::Subcommand;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete now what retention no longer keeps, and print the rows deleted per table.
    Run {
        /// Print what a pass would delete, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("another process is running a retention pass; nothing was deleted, try again later")]
    Busy,
}

pub async fn run(config: &Config, command: RetentionCommand) -> anyhow::Result<()> {
    let RetentionCommand::Run { dry_run } = command;
    let store = Store::connect_lazy(&config.database_url, 1)?;
    store.migrate().await.context("migrating the database")?;
    let policy = Policy::new(config);
    let deleted = match dry_run {
        true => retention::dry_run(&store, &policy).await?,
        false => retention::pass(&store, &policy, &CancellationToken::new())
            .await?
            .ok_or(RetentionError::Busy)?,
    };
    print!("{}", table(&deleted, dry_run));
    if dry_run {
        println!("dry run: nothing was deleted");
    }
    Ok(())
}

fn table(deleted: &Deleted, dry_run: bool) -> String {
    let header = if dry_run { "WOULD DELETE" } else { "DELETED" };
    let mut lines = vec![vec!["TABLE".to_string(), header.to_string()]];
    lines.extend(
        deleted
            .by_table()
            .map(|(table, n)| vec![table.name().to_string(), n.to_string()]),
    );
    columns(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_whether_rows_went_or_would_go() {
        let deleted = Deleted {
            events: 2,
            deliveries: 3,
            delivery_attempts: 5,
            event_transitions: 7,
            dead_letters: 1,
        };
        assert_eq!(
            table(&deleted, false),
            "TABLE              DELETED\n\
             events             2\n\
             deliveries         3\n\
             delivery_attempts  5\n\
             event_transitions  7\n\
             dead_letters       1\n"
        );
        assert!(table(&deleted, true).starts_with("TABLE              WOULD DELETE\n"));
    }
}
