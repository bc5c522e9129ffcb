//! The leader's lock: a session advisory lock on a connection of its own, so it is held
//! exactly as long as that session lives. A leader that dies, or whose connection breaks,
//! frees it the moment Postgres sees the session end.

use super::{Store, StoreError};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// First key of the lock ("hkgl"); the second is the schema's, so deployments (and tests)
/// sharing a database in different schemas each elect their own leader.
const LOCK_CLASS: i32 = 0x686b_676c;

/// Postgres ends a leader's session that stays silent this long (a machine that vanished
/// without closing its connections), freeing the lock for a standby. The leader speaks far
/// more often: see [`Session::confirm`].
const SILENT_SESSION: Duration = Duration::from_secs(10);

/// A session of the leader's own: a standby tries for the lock on it every second, and the
/// leader holds the lock on it. Dropping it closes the session, which releases the lock.
pub struct Session {
    conn: PgConnection,
}

impl Store {
    /// Opens a session for the election, outside the pools.
    pub async fn leader_session(&self) -> Result<Session, StoreError> {
        let mut conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        // Postgres before 14 knows no idle_session_timeout; a lock held by a vanished machine
        // is then freed only when the server's TCP keepalive gives up on it.
        let limit = format!("SET idle_session_timeout = {}", SILENT_SESSION.as_millis());
        if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(limit))
            .execute(&mut conn)
            .await
        {
            tracing::debug!(%error, "idle_session_timeout not set");
        }
        Ok(Session { conn })
    }
}

impl Session {
    /// Takes the leader's lock if no other session holds it.
    pub async fn try_lead(&mut self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(LOCK_CLASS)
                .fetch_one(&mut self.conn)
                .await?,
        )
    }

    /// Whether the lock is still held: the session still answers within `within`.
    pub async fn confirm(&mut self, within: Duration) -> bool {
        let ping = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut self.conn);
        matches!(tokio::time::timeout(within, ping).await, Ok(Ok(1)))
    }

    /// Ends the session, and with it the lock, at once.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}
