//! Postgres: the source of truth. Runtime queries only, so the build needs no database.

pub mod alerts;
pub mod dead_letters;
pub mod deliveries;
pub mod events;
pub mod operations;
pub mod status;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
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
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy(url)?;
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
