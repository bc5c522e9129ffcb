//! Deleting what retention no longer keeps, one short transaction per batch: expired dead
//! letters, and settled events past their source's retention with their deliveries, attempts
//! and audit rows. An event is kept while any of its dead letters is, so a dead letter always
//! has the headers and attempts that `dlq show` and replays read (the foreign key refuses to
//! delete it otherwise).
//!
//! A pass works on one connection, which holds a session advisory lock for as long as it is
//! open: one pass at a time per schema, whichever process runs it.

use super::{Keyset, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

/// Rows picked per transaction.
pub const BATCH: usize = 500;

/// First key of the pass lock ("hkgr"); the second is the schema's, so deployments (and tests)
/// sharing a database in different schemas do not exclude each other.
const LOCK_CLASS: i32 = 0x686b_6772;

/// The tables retention deletes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Events,
    Deliveries,
    DeliveryAttempts,
    EventTransitions,
    DeadLetters,
}

impl Table {
    pub const ALL: [Self; 5] = [
        Self::Events,
        Self::Deliveries,
        Self::DeliveryAttempts,
        Self::EventTransitions,
        Self::DeadLetters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Deliveries => "deliveries",
            Self::DeliveryAttempts => "delivery_attempts",
            Self::EventTransitions => "event_transitions",
            Self::DeadLetters => "dead_letters",
        }
    }

    /// The column holding the id of the picked row a row belongs to.
    fn picked_by(self) -> &'static str {
        match self {
            Self::Events | Self::DeadLetters => "id",
            _ => "event_id",
        }
    }
}

/// An expired event's rows, children first: each statement deletes (and counts) its own
/// table, so the cascades behind the last one find nothing left.
const EVENT_ROWS: [Table; 4] = [
    Table::DeliveryAttempts,
    Table::EventTransitions,
    Table::Deliveries,
    Table::Events,
];

/// Rows deleted (or, in a dry run, that would be), by table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub events: u64,
    pub deliveries: u64,
    pub delivery_attempts: u64,
    pub event_transitions: u64,
    pub dead_letters: u64,
}

impl Deleted {
    fn get(&self, table: Table) -> u64 {
        let mut copy = *self;
        *copy.slot(table)
    }

    pub fn by_table(&self) -> [(Table, u64); 5] {
        Table::ALL.map(|table| (table, self.get(table)))
    }

    fn slot(&mut self, table: Table) -> &mut u64 {
        match table {
            Table::Events => &mut self.events,
            Table::Deliveries => &mut self.deliveries,
            Table::DeliveryAttempts => &mut self.delivery_attempts,
            Table::EventTransitions => &mut self.event_transitions,
            Table::DeadLetters => &mut self.dead_letters,
        }
    }
}

impl std::ops::AddAssign for Deleted {
    fn add_assign(&mut self, other: Self) {
        for (table, n) in other.by_table() {
            *self.slot(table) += n;
        }
    }
}

/// What one batch did, and where the next one starts (`None` after the last).
#[derive(Debug, Default)]
pub struct Batch {
    pub deleted: Deleted,
    pub next: Option<Keyset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Delete,
    /// A dry run: the same selection, counted; nothing is locked or deleted.
    Count,
}

/// A row in keyset order, and whether it goes.
#[derive(sqlx::FromRow)]
struct Picked {
    at: DateTime<Utc>,
    id: Uuid,
    expired: bool,
}

/// The connection a pass (or a dry run) works on.
pub struct Sweeper {
    conn: PoolConnection<Postgres>,
    mode: Mode,
}

impl Store {
    /// A sweeper holding the pass lock, or `None` when another session holds it. Release it
    /// when done; dropping it also frees the lock, once Postgres has seen the connection close.
    pub async fn retention_sweeper(&self) -> Result<Option<Sweeper>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        // The lock belongs to the session: the connection is closed, never returned to the
        // pool still holding it, whichever way the pass ends.
        conn.close_on_drop();
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(LOCK_CLASS)
                .fetch_one(&mut *conn)
                .await?;
        Ok(locked.then_some(Sweeper {
            conn,
            mode: Mode::Delete,
        }))
    }

    /// A sweeper that counts what a pass would delete. It takes no lock: it changes nothing.
    pub async fn retention_dry_run(&self) -> Result<Sweeper, StoreError> {
        Ok(Sweeper {
            conn: self.pool().acquire().await?,
            mode: Mode::Count,
        })
    }
}

impl Sweeper {
    /// Ends the pass: the lock is free for the next one as soon as this returns.
    pub async fn release(mut self) -> Result<(), StoreError> {
        if self.mode == Mode::Delete {
            sqlx::query("SELECT pg_advisory_unlock($1, hashtext(current_schema()))")
                .bind(LOCK_CLASS)
                .execute(&mut *self.conn)
                .await?;
        }
        Ok(())
    }

    /// The database's clock, which stamped the rows.
    pub async fn now(&mut self) -> Result<DateTime<Utc>, StoreError> {
        Ok(sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *self.conn)
            .await?)
    }

    /// Every source that has events, configured or not.
    pub async fn sources(&mut self) -> Result<Vec<String>, StoreError> {
        // One index descent per source instead of a scan of every event.
        Ok(sqlx::query_scalar(
            "WITH RECURSIVE s (source) AS (
                 SELECT min(source) FROM events
                 UNION ALL
                 SELECT (SELECT min(source) FROM events WHERE source > s.source)
                 FROM s WHERE s.source IS NOT NULL
             )
             SELECT source FROM s WHERE source IS NOT NULL",
        )
        .fetch_all(&mut *self.conn)
        .await?)
    }

    /// The next [`BATCH`] dead letters created before `cutoff`, after `after`, oldest first.
    pub async fn dead_letters(
        &mut self,
        cutoff: DateTime<Utc>,
        after: Option<Keyset>,
    ) -> Result<Batch, StoreError> {
        let mut pick = QueryBuilder::new(
            "SELECT created_at AS at, id, true AS expired FROM dead_letters WHERE created_at < ",
        );
        pick.push_bind(cutoff);
        push_after(&mut pick, "created_at", after);
        pick.push(" ORDER BY created_at, id LIMIT ").push(BATCH);
        if self.mode == Mode::Delete {
            // One a replay holds is left for the next pass.
            pick.push(" FOR UPDATE SKIP LOCKED");
        }
        self.batch(pick, &[Table::DeadLetters]).await
    }

    /// The next [`BATCH`] events of `source` received before `cutoff`, after `after`, oldest
    /// first. Those settled and without a dead letter go, with their deliveries, attempts and
    /// audit rows. `dead_letters_cutoff` is the pass's: a dry run counts an event whose dead
    /// letters the pass deletes first as gone.
    pub async fn events(
        &mut self,
        source: &str,
        cutoff: DateTime<Utc>,
        dead_letters_cutoff: DateTime<Utc>,
        after: Option<Keyset>,
    ) -> Result<Batch, StoreError> {
        // A real pass keeps every event that still has a dead letter, so a dead letter it
        // could not delete (a replay held it) keeps its event instead of failing the batch.
        let dead_letters_gone_before = (self.mode == Mode::Count).then_some(dead_letters_cutoff);
        let mut pick = QueryBuilder::new(
            "WITH scanned AS (SELECT received_at, id FROM events WHERE source = ",
        );
        pick.push_bind(source.to_string())
            .push(" AND received_at < ")
            .push_bind(cutoff);
        push_after(&mut pick, "received_at", after);
        pick.push(" ORDER BY received_at, id LIMIT ")
            .push(BATCH)
            .push(
                "), expired AS (
                     SELECT e.id FROM events e JOIN scanned USING (id)
                     WHERE e.status <> 'pending'
                       AND NOT EXISTS (SELECT 1 FROM deliveries d
                                       WHERE d.event_id = e.id AND d.state = 'pending')
                       AND NOT EXISTS (SELECT 1 FROM dead_letters l
                                       WHERE l.event_id = e.id
                                         AND l.created_at >= COALESCE(",
            )
            .push_bind(dead_letters_gone_before)
            .push(", '-infinity'::timestamptz))");
        if self.mode == Mode::Delete {
            pick.push(" ORDER BY e.id FOR UPDATE OF e SKIP LOCKED");
        }
        // Rows kept are walked past too, so a batch never scans more than BATCH events.
        pick.push(
            ")
             SELECT s.received_at AS at, s.id, x.id IS NOT NULL AS expired
             FROM scanned s LEFT JOIN expired x USING (id)
             ORDER BY s.received_at, s.id",
        );
        self.batch(pick, &EVENT_ROWS).await
    }

    /// One transaction: picks rows with `pick`, then deletes (or counts) the expired ones' rows
    /// in `tables`, in that order.
    async fn batch(
        &mut self,
        mut pick: QueryBuilder<Postgres>,
        tables: &[Table],
    ) -> Result<Batch, StoreError> {
        let mut tx = self.conn.begin().await?;
        let picked: Vec<Picked> = pick.build_query_as().fetch_all(&mut *tx).await?;
        let next = match picked.last() {
            Some(last) if picked.len() >= BATCH => Some(Keyset {
                at: last.at,
                id: last.id,
            }),
            _ => None,
        };
        let ids: Vec<Uuid> = picked.iter().filter(|p| p.expired).map(|p| p.id).collect();
        let mut deleted = Deleted::default();
        if !ids.is_empty() {
            for &table in tables {
                *deleted.slot(table) = remove(&mut tx, self.mode, table, &ids).await?;
            }
        }
        tx.commit().await?;
        Ok(Batch { deleted, next })
    }
}

/// Deletes, or counts, the rows of `table` belonging to the picked `ids`.
async fn remove(
    conn: &mut PgConnection,
    mode: Mode,
    table: Table,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let (name, column) = (table.name(), table.picked_by());
    Ok(match mode {
        Mode::Delete => {
            let sql = format!("DELETE FROM {name} WHERE {column} = ANY($1)");
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(ids)
                .execute(conn)
                .await?;
            done.rows_affected()
        }
        Mode::Count => {
            let sql = format!("SELECT count(*) FROM {name} WHERE {column} = ANY($1)");
            let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(ids)
                .fetch_one(conn)
                .await?;
            n as u64
        }
    })
}

/// Appends ` AND (<time>, id) > (after)` when resuming.
fn push_after(query: &mut QueryBuilder<Postgres>, time: &str, after: Option<Keyset>) {
    if let Some(after) = after {
        query
            .push(format_args!(" AND ({time}, id) > ("))
            .push_bind(after.at)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
}
