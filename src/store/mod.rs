//! Postgres: the source of truth. Runtime queries only, so the build needs no database.

pub mod admin_actions;
pub mod alerts;
pub mod breaker;
pub mod claim;
pub mod dead_letters;
pub mod deliveries;
pub mod destinations;
pub mod events;
pub mod ingress_counts;
pub mod leader;
pub mod operations;
pub mod ordered;
pub mod outcomes;
pub mod pipeline;
pub mod purge;
pub mod received;
pub mod redeliver;
pub mod requeue;
pub mod retention;
pub mod routes;
pub mod rules;
pub mod status;
pub mod transitions;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;

/// How long a request may wait for a pooled connection before the receiver answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the connection check before migrating waits for Postgres to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("postgres did not answer within {0:?}")]
    Timeout(Duration),
    /// The pool only says it timed out; one direct connection says why, once.
    #[error("cannot connect to Postgres at {address} (database {database:?}): {cause}")]
    Unreachable {
        address: String,
        database: String,
        cause: String,
    },
    #[error("{0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
    options: PgConnectOptions,
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

    /// Every connection runs with `jit = off`: hookgate's statements touch a few hundred rows
    /// by index, but on a large table the planner's estimate for some of them (the claim's
    /// look at ordered destinations) passes `jit_above_cost`, and compiling then took ~35 ms
    /// per execution, 30 times the statement (measured with a million deliveries pending).
    fn lazy(options: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let options = options.options([("jit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        Ok(Self { pool, options })
    }

    /// Applies pending migrations, after checking that Postgres takes a connection: every
    /// command starts here, and a pool that cannot connect reports only "pool timed out".
    /// sqlx holds a Postgres advisory lock while it migrates, so several processes starting
    /// at once apply each migration exactly once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.check_connection().await?;
        Ok(sqlx::migrate!("./migrations").run(&self.pool).await?)
    }

    /// One direct connection: its failure names the host, port, database and cause.
    async fn check_connection(&self) -> Result<(), StoreError> {
        let unreachable = |cause: String| StoreError::Unreachable {
            address: format!("{}:{}", self.options.get_host(), self.options.get_port()),
            database: self.options.get_database().unwrap_or_default().to_string(),
            cause,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&self.options)).await
        {
            Ok(Ok(connection)) => {
                // Closing politely is a courtesy; the check already succeeded.
                let _ = connection.close().await;
                Ok(())
            }
            Ok(Err(error)) => Err(unreachable(cause(&error))),
            Err(_) => Err(unreachable(format!(
                "no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// What went wrong at the bottom of a connection error, in the server's or the system's words
/// ("connection refused", "database \"x\" does not exist"), without sqlx's wrapping.
fn cause(error: &sqlx::Error) -> String {
    if let sqlx::Error::Database(database) = error {
        return database.message().to_string();
    }
    let mut deepest: &dyn std::error::Error = error;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}
