//! The floors hookgate's ingest is compared with: what Postgres and Redis alone do for the same
//! work, on private tables and keys that are dropped afterwards.
//!
//! - `insert`: a single-row `INSERT .. ON CONFLICT DO NOTHING` into a table shaped like
//!   `events` (the floor);
//! - `insert_with_delivery`: the statement hookgate really runs, the event and its one
//!   `deliveries` row in one CTE, so the gap between hookgate and the floor can be split into
//!   SQL and everything else;
//! - `insert_batch`: multi-row inserts of `batch` rows, the ceiling micro-batching could reach;
//! - `xadd`: one XADD per call; `xadd_multi`: hookgate's enqueue, `MULTI XADD SADD EXEC`.

use crate::report::{self, Latency};
use crate::sign::{self, Preset};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

/// Payload of every floor row, as in the 1 KiB ingest runs.
const PAYLOAD: usize = 1024;

pub struct FloorPlan {
    pub database_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub count: usize,
    pub concurrency: usize,
    pub batch: usize,
}

/// Operations (rows or XADDs) per second at a concurrency, with per-call latency.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub per_s: f64,
    pub calls: usize,
    pub elapsed_s: f64,
    pub latency: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub concurrency: usize,
    pub batch: usize,
    pub insert: Rate,
    pub insert_with_delivery: Rate,
    /// Rows per second.
    pub insert_batch: Rate,
    pub xadd: Rate,
    pub xadd_multi: Rate,
}

impl FloorReport {
    pub fn print(&self) {
        let c = self.concurrency;
        let line = |name: &str, unit: &str, r: &Rate| {
            eprintln!(
                "floor c{c} {name:<22} {:>9.0} {unit}/s  (call {})",
                r.per_s,
                r.latency.line()
            );
        };
        line("insert", "rows", &self.insert);
        line("insert+delivery", "rows", &self.insert_with_delivery);
        line(
            &format!("insert x{}", self.batch),
            "rows",
            &self.insert_batch,
        );
        line("xadd", "xadds", &self.xadd);
        line("multi xadd+sadd", "calls", &self.xadd_multi);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

pub async fn run(plan: &FloorPlan) -> Result<FloorReport, FloorError> {
    let pool = PgPoolOptions::new()
        .max_connections(plan.concurrency as u32)
        .connect(&plan.database_url)
        .await?;
    let redis = redis::Client::open(plan.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    create_tables(&pool).await?;
    let result = measure(plan, &pool, &redis).await;
    // Cleaned up whatever the measurement did, so a failed run leaves nothing behind.
    let dropped = drop_tables(&pool).await;
    let deleted = delete_keys(plan, &redis).await;
    let report = result?;
    dropped?;
    deleted?;
    Ok(report)
}

async fn measure(
    plan: &FloorPlan,
    pool: &PgPool,
    redis: &MultiplexedConnection,
) -> Result<FloorReport, FloorError> {
    let (count, c) = (plan.count, plan.concurrency);
    let headers = Arc::new(headers_json());

    let sql: &str = "INSERT INTO hgbench_floor_events (id, source, external_id, payload, headers)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source, external_id) DO NOTHING";
    let (p, h) = (pool.clone(), headers.clone());
    let insert = closed_loop(count, c, move || {
        let (pool, headers) = (p.clone(), h.clone());
        async move {
            let (id, external, payload) = row();
            sqlx::query(sql)
                .bind(id)
                .bind("bench")
                .bind(external)
                .bind(payload)
                .bind(&*headers)
                .execute(&pool)
                .await
                .map(drop)
        }
    })
    .await?;

    // The single-row statement hookgate ran per webhook before micro-batching (commit 747703b):
    // the event and its delivery row, on private tables shaped like hookgate's now.
    let sql = "WITH ins AS (
             INSERT INTO hgbench_floor_events (id, source, external_id, payload, headers, status)
             VALUES ($1, $2, $3, $4, $5,
                     CASE WHEN cardinality($6::text[]) = 0 THEN 'delivered' ELSE 'pending' END)
             ON CONFLICT (source, external_id) DO NOTHING
             RETURNING id, received_at
         ), deliveries AS (
             INSERT INTO hgbench_floor_deliveries
                 (event_id, destination, max_attempts, next_attempt_at, requeue_at, requeue_check)
             SELECT ins.id, d, $7, ins.received_at, ins.received_at + interval '10 seconds', true
             FROM ins, unnest($6::text[]) AS d
         )
         SELECT id FROM ins";
    let (p, h) = (pool.clone(), headers.clone());
    let insert_with_delivery = closed_loop(count, c, move || {
        let (pool, headers) = (p.clone(), h.clone());
        async move {
            let (id, external, payload) = row();
            sqlx::query(sql)
                .bind(id)
                .bind("bench")
                .bind(external)
                .bind(payload)
                .bind(&*headers)
                .bind(vec!["sink".to_string()])
                .bind(8_i32)
                .fetch_optional(&pool)
                .await
                .map(drop)
        }
    })
    .await?;

    let sql: &str = "INSERT INTO hgbench_floor_events (id, source, external_id, payload, headers)
         SELECT id, 'bench', external_id, payload, $4
         FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS r(id, external_id, payload)
         ON CONFLICT (source, external_id) DO NOTHING";
    let batch = plan.batch.max(1);
    let (p, h) = (pool.clone(), headers.clone());
    let mut insert_batch = closed_loop(count.div_ceil(batch), c, move || {
        let (pool, headers) = (p.clone(), h.clone());
        async move {
            let (mut ids, mut externals, mut payloads) = (vec![], vec![], vec![]);
            for _ in 0..batch {
                let (id, external, payload) = row();
                ids.push(id);
                externals.push(external);
                payloads.push(payload);
            }
            sqlx::query(sql)
                .bind(ids)
                .bind(externals)
                .bind(payloads)
                .bind(&*headers)
                .execute(&pool)
                .await
                .map(drop)
        }
    })
    .await?;
    insert_batch.per_s *= batch as f64;

    let key = Arc::new(xadd_key(plan));
    let (conn, k) = (redis.clone(), key.clone());
    let xadd = closed_loop(count, c, move || {
        let (mut conn, key) = (conn.clone(), k.clone());
        async move {
            redis::cmd("XADD")
                .arg(key.as_str())
                .arg("*")
                .arg("event")
                .arg(Uuid::now_v7().to_string())
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
        }
    })
    .await?;

    let set = Arc::new(queued_key(plan));
    let conn = redis.clone();
    let xadd_multi = closed_loop(count, c, move || {
        let (mut conn, key, set) = (conn.clone(), key.clone(), set.clone());
        async move {
            let id = Uuid::now_v7().to_string();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("XADD")
                .arg(key.as_str())
                .arg("*")
                .arg("event")
                .arg(&id)
                .ignore()
                .cmd("SADD")
                .arg(set.as_str())
                .arg(&id)
                .ignore();
            pipe.query_async::<()>(&mut conn).await
        }
    })
    .await?;

    Ok(FloorReport {
        concurrency: c,
        batch,
        insert,
        insert_with_delivery,
        insert_batch,
        xadd,
        xadd_multi,
    })
}

/// Runs `op` `count` times with `concurrency` in flight; stops at the first error. Lanes are
/// spawned tasks, so the load spreads over the runtime's threads as the server's would.
async fn closed_loop<F, Fut, E>(count: usize, concurrency: usize, op: F) -> Result<Rate, E>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let histogram = Arc::new(Mutex::new(report::histogram()));
    let start = Instant::now();
    let lanes: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (op, next, histogram) = (op.clone(), next.clone(), histogram.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let began = Instant::now();
                    op().await?;
                    let micros = began.elapsed().as_micros() as u64;
                    report::record(&mut histogram.lock().expect("not poisoned"), micros);
                }
                Ok(())
            })
        })
        .collect();
    for lane in lanes {
        lane.await.expect("a lane does not panic")?;
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    Ok(Rate {
        per_s: count as f64 / elapsed,
        calls: count,
        elapsed_s: elapsed,
        latency: Latency::of(&histogram.lock().expect("not poisoned")),
    })
}

/// A fresh row: UUIDv7 primary key (as hookgate), random external id, 1 KiB JSON payload.
fn row() -> (Uuid, String, Vec<u8>) {
    let external = Uuid::new_v4().to_string();
    let payload = sign::body(Preset::Github, &external, PAYLOAD);
    (Uuid::now_v7(), external, payload)
}

/// Headers as hookgate stores a GitHub delivery's: `[[name, value], ...]`.
fn headers_json() -> serde_json::Value {
    serde_json::json!([
        ["host", "127.0.0.1:8080"],
        ["content-type", "application/json"],
        ["x-hub-signature-256", format!("sha256={}", "0".repeat(64))],
        ["x-github-delivery", Uuid::new_v4().to_string()],
        ["x-github-event", "push"],
        ["content-length", "1024"],
    ])
}

fn xadd_key(plan: &FloorPlan) -> String {
    format!("{}:{{floor}}:xadd", plan.prefix)
}

fn queued_key(plan: &FloorPlan) -> String {
    format!("{}:{{floor}}:queued", plan.prefix)
}

/// Same columns, constraints and defaults as migrations/0001 and 0002 (without the triggers,
/// which fire on updates only and so cost an insert nothing).
async fn create_tables(pool: &PgPool) -> Result<(), sqlx::Error> {
    drop_tables(pool).await?;
    sqlx::query(
        "CREATE TABLE hgbench_floor_events (
             id          uuid PRIMARY KEY,
             source      text        NOT NULL,
             external_id text        NOT NULL,
             payload     bytea       NOT NULL,
             headers     jsonb       NOT NULL,
             received_at timestamptz NOT NULL DEFAULT now(),
             status      text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'delivered', 'dead_lettered')),
             UNIQUE (source, external_id)
         )",
    )
    .execute(pool)
    .await?;
    // Like the indexes on events of migrations 0003, 0005 and 0007, which every hookgate
    // insert maintains too.
    for index in [
        "hgbench_floor_events_received ON hgbench_floor_events (received_at DESC, id DESC)",
        "hgbench_floor_events_status ON hgbench_floor_events (status, received_at DESC, id DESC)",
        "hgbench_floor_events_source ON hgbench_floor_events (source, received_at DESC, id DESC)",
        "hgbench_floor_events_external ON hgbench_floor_events (external_id)",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE INDEX {index}")))
            .execute(pool)
            .await?;
    }
    sqlx::query(
        "CREATE TABLE hgbench_floor_deliveries (
             event_id         uuid        NOT NULL REFERENCES hgbench_floor_events (id) ON DELETE CASCADE,
             destination      text        NOT NULL,
             state            text        NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'dead')),
             reason           text        NOT NULL DEFAULT 'received',
             attempts         integer     NOT NULL DEFAULT 0,
             max_attempts     integer     NOT NULL,
             next_attempt_at  timestamptz NOT NULL DEFAULT now(),
             lease_until      timestamptz,
             lease_token      uuid,
             first_attempt_at timestamptz,
             last_attempt_at  timestamptz,
             last_status      integer,
             last_error       text,
             delivered_at     timestamptz,
             requeue_at       timestamptz,
             requeue_check    boolean     NOT NULL DEFAULT false,
             PRIMARY KEY (event_id, destination)
         )"
    )
    .execute(pool)
    .await?;
    // The partial indexes hookgate's deliveries carry (migrations 0008 and 0011).
    sqlx::query(
        "CREATE INDEX hgbench_floor_deliveries_pending ON hgbench_floor_deliveries (event_id)
         WHERE state = 'pending'",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE INDEX hgbench_floor_deliveries_requeue ON hgbench_floor_deliveries (requeue_at)
         WHERE state = 'pending' AND requeue_at IS NOT NULL",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn drop_tables(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("DROP TABLE IF EXISTS hgbench_floor_deliveries, hgbench_floor_events")
        .execute(pool)
        .await
        .map(drop)
}

async fn delete_keys(plan: &FloorPlan, redis: &MultiplexedConnection) -> Result<(), FloorError> {
    redis::cmd("DEL")
        .arg(xadd_key(plan))
        .arg(queued_key(plan))
        .query_async::<()>(&mut redis.clone())
        .await?;
    Ok(())
}
