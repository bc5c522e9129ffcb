//! Rows written straight into a test's schema: events and dead letters at chosen times, in
//! numbers no test would wait for the pipeline to produce. Each takes a pool or, to write
//! inside a transaction, a connection.

use sqlx::PgExecutor;
use uuid::Uuid;

/// An event dead-lettered for `destination` after 3 attempts, its dead letter created at
/// `created_at` (SQL timestamptz text). Returns the dead letter's id.
pub async fn dead_letter(
    db: impl PgExecutor<'_>,
    source: &str,
    destination: &str,
    created_at: &str,
) -> Uuid {
    dead_letter_with(
        db,
        source,
        destination,
        created_at,
        b"{\"hello\":\"world\"}",
        "HTTP 500",
    )
    .await
}

/// [`dead_letter`] with this payload and last error. The event's external id is
/// `ext-<event id>`.
pub async fn dead_letter_with(
    db: impl PgExecutor<'_>,
    source: &str,
    destination: &str,
    created_at: &str,
    payload: &[u8],
    last_error: &str,
) -> Uuid {
    let event = Uuid::new_v4();
    let id = Uuid::new_v4();
    sqlx::query(
        "WITH e AS (
             INSERT INTO events (id, source, external_id, payload, headers, status)
             VALUES ($1, $3, 'ext-' || $1::text, $5, '[]'::jsonb, 'dead_lettered')
             RETURNING id
         ), d AS (
             INSERT INTO deliveries (event_id, destination, state, attempts, max_attempts,
                                     last_status, last_error)
             SELECT id, $4, 'dead', 3, 3, 500, $6 FROM e
         )
         INSERT INTO dead_letters (id, event_id, source, destination, payload, attempts,
                                   last_error, last_status, failure_kind, first_attempt_at,
                                   last_attempt_at, created_at)
         SELECT $2, id, $3, $4, $5, 3, $6, 500, 'rejected', $7::timestamptz - interval '1 hour',
                $7::timestamptz, $7::timestamptz
         FROM e",
    )
    .bind(event)
    .bind(id)
    .bind(source)
    .bind(destination)
    .bind(payload)
    .bind(last_error)
    .bind(created_at)
    .execute(db)
    .await
    .unwrap();
    id
}

/// `count` dead letters of `source`/`destination` in one statement, created 1..=count seconds
/// ago, each from its own event (external id `bulk-<event id>`) whose delivery is dead after 3
/// attempts.
pub async fn dead_letters(db: impl PgExecutor<'_>, source: &str, destination: &str, count: i32) {
    sqlx::query(
        "WITH g AS (
             SELECT gen_random_uuid() AS event, gen_random_uuid() AS id, n
             FROM generate_series(1, $1) n
         ), e AS (
             INSERT INTO events (id, source, external_id, payload, headers, status)
             SELECT event, $2, 'bulk-' || event::text, '{}', '[]', 'dead_lettered' FROM g
         ), d AS (
             INSERT INTO deliveries (event_id, destination, state, attempts, max_attempts)
             SELECT event, $3, 'dead', 3, 3 FROM g
         )
         INSERT INTO dead_letters (id, event_id, source, destination, payload, attempts,
                                   last_error, last_status, failure_kind, created_at)
         SELECT id, event, $2, $3, '{}', 3, 'HTTP 503', 503, 'rejected',
                now() - n * interval '1 second'
         FROM g",
    )
    .bind(count)
    .bind(source)
    .bind(destination)
    .execute(db)
    .await
    .unwrap();
}

/// The arrival transition of `event`, as the receiver's insert writes it with the event (rows
/// seeded here have none otherwise).
pub async fn arrival(db: impl PgExecutor<'_>, event: Uuid) {
    sqlx::query(
        "INSERT INTO event_transitions (event_id, from_state, to_state, reason)
         SELECT id, NULL, status, 'received' FROM events WHERE id = $1",
    )
    .bind(event)
    .execute(db)
    .await
    .unwrap();
}

/// An event of `source` with `status`, received at `received_at` (SQL timestamptz text), with
/// no deliveries. Returns its id.
pub async fn event(
    db: impl PgExecutor<'_>,
    source: &str,
    external_id: &str,
    received_at: &str,
    status: &str,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO events (id, source, external_id, payload, headers, received_at, status)
         VALUES ($1, $2, $3, '{}', '[]', $4::timestamptz, $5)",
    )
    .bind(id)
    .bind(source)
    .bind(external_id)
    .bind(received_at)
    .bind(status)
    .execute(db)
    .await
    .unwrap();
    id
}

/// An event of `source` waiting for its one delivery, to `destination`: pending, due now,
/// never attempted, 3 attempts allowed. Returns the event's id.
pub async fn pending_delivery(db: impl PgExecutor<'_>, source: &str, destination: &str) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "WITH e AS (
             INSERT INTO events (id, source, external_id, payload, headers, status)
             VALUES ($1, $2, 'ext-' || $1::text, '{}', '[]', 'pending')
             RETURNING id
         )
         INSERT INTO deliveries (event_id, destination, max_attempts)
         SELECT id, $3, 3 FROM e",
    )
    .bind(id)
    .bind(source)
    .bind(destination)
    .execute(db)
    .await
    .unwrap();
    id
}

/// `count` delivered events of `source` in one statement, received 1..=count seconds ago, each
/// with one delivery to `destination`, delivered at its first attempt (budget 1). Returns their
/// ids, oldest first.
pub async fn delivered_events(
    db: impl PgExecutor<'_>,
    source: &str,
    destination: &str,
    count: i32,
) -> Vec<Uuid> {
    sqlx::query_scalar(
        "WITH g AS (
             SELECT gen_random_uuid() AS event, n FROM generate_series(1, $1) n
         ), e AS (
             INSERT INTO events (id, source, external_id, payload, headers, received_at, status)
             SELECT event, $2, 'delivered-' || event::text, '{}', '[]',
                    now() - n * interval '1 second', 'delivered'
             FROM g
             RETURNING id, received_at
         ), d AS (
             INSERT INTO deliveries (event_id, destination, state, attempts, max_attempts,
                                     delivered_at)
             SELECT event, $3, 'delivered', 1, 1, now() FROM g
         )
         SELECT id FROM e ORDER BY received_at, id",
    )
    .bind(count)
    .bind(source)
    .bind(destination)
    .fetch_all(db)
    .await
    .unwrap()
}
