//! Postgres: the source of truth. Runtime queries only, so the build needs no database.

pub mod admin_actions;
pub mod alerts;
pub mod breaker;
pub mod claim;
pub mod dead_letters;
pub mod deliveries;
pub mod destinations;
pub mod events;
pub mod leader;
pub mod operations;
pub mod ordered;
pub mod outcomes;
pub mod pipeline;
pub mod purge;
pub mod redeliver;
pub mod requeue;
pub mod retention;
pub mod routes;
pub mod rules;
pub mod status;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

/// How long a request may wait for a pooled connection before the receiver answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("postgres did not answer within {0:?}")]
    Timeout(Duration),
}

/// A position in a `(time, id)` ordering: where the next page or batch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub at: chrono::DateTime<chrono::Utc>,
    pub id: uuid::Uuid,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// A pool that connects on first use, so a process can start while Postgres is still coming up.
    pub fn connect_lazy(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::lazy(url.parse()?, max_connections)
    }

    /// Like [`Store::connect_lazy`], but commits do not wait for the WAL flush
    /// (`synchronous_commit = off`). For the worker's bookkeeping only: a commit lost in a
    /// Postgres crash (the last few hundred milliseconds) leaves a delivery pending or its
    /// lease to run out, and it is delivered again (at least once, never lost); the events
    /// themselves are always written through a synchronous pool.
    pub fn connect_lazy_relaxed(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let options = options.options([("synchronous_commit", "off")]);
        Self::lazy(options, max_connections)
    }

    fn lazy(options: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// Applies pending migrations. sqlx holds a Postgres advisory lock while it migrates, so
    /// several processes starting at once apply each migration exactly once.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations").run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
