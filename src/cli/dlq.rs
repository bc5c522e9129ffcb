//! `hookgate dlq list|show|replay|purge`.

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {}

pub async fn run(_config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    match command {}
}
