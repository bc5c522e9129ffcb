//! Circuit-breaker accounting: what a batch of outcomes says about each destination, applied
//! in the outcome's transaction. A batch in which a destination answered closes its breaker
//! (a destination that answers is not down); one in which it only failed adds its failures,
//! opens a closed breaker that reached its threshold, and reopens a half-open one whose probe
//! failed, for twice the last cool-down (up to the cap).

use super::deliveries::{Attempt, FailureKind, Next, storable};
use crate::config::{Breaker, Config};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap};

/// Each configured destination's breaker, by source and destination.
#[derive(Debug, Clone, Default)]
pub struct Breakers(HashMap<(String, String), Breaker>);

impl Breakers {
    pub fn new(config: &Config) -> Self {
        Self(
            (config.sources.iter())
                .flat_map(|s| {
                    (s.destinations.iter()).map(|d| ((s.name.clone(), d.name.clone()), d.breaker))
                })
                .collect(),
        )
    }

    /// A destination not configured (here) gets the default breaker.
    fn get(&self, source: &str, destination: &str) -> Option<Breaker> {
        self.0
            .get(&(source.to_string(), destination.to_string()))
            .copied()
    }
}

/// One destination's attempts in a batch.
#[derive(Debug, Default)]
struct Tally {
    successes: i32,
    failures: i32,
    last_error: Option<String>,
}

/// What the batch's attempts (each with its event's source) say about each destination, in
/// key order: the order destination rows are locked in.
#[derive(Debug, Default)]
pub(super) struct Tallies<'a>(BTreeMap<(&'a str, &'a str), Tally>);

impl<'a> Tallies<'a> {
    pub(super) fn add(&mut self, source: &'a str, attempt: &'a Attempt) {
        // A throttled delivery was not attempted: it says nothing about the destination.
        if matches!(attempt.next, Next::Throttled { .. }) {
            return;
        }
        let tally = self.0.entry((source, &attempt.destination)).or_default();
        match &attempt.failure {
            None => tally.successes += 1,
            // hookgate's own failures say nothing about the destination.
            Some((FailureKind::Pipeline, _)) => {}
            Some((_, error)) => {
                tally.failures += 1;
                tally.last_error = Some(storable(error).into_owned());
            }
        }
    }

    /// Applies the tallies in `tx`: rows for destinations that failed are created first, then
    /// the rows to change are locked in key order, so concurrent committers cannot deadlock.
    /// A batch that only succeeded, for a destination closed and without failures, changes
    /// nothing: the hot path reads the rows in one statement and takes no lock.
    pub(super) async fn apply(
        &self,
        tx: &mut PgConnection,
        breakers: &Breakers,
    ) -> Result<(), sqlx::Error> {
        let mut columns = Columns::default();
        for ((source, destination), tally) in &self.0 {
            if tally.successes == 0 && tally.failures == 0 {
                continue;
            }
            let breaker = breakers.get(source, destination).unwrap_or_default();
            columns.source.push(*source);
            columns.destination.push(*destination);
            columns.successes.push(tally.successes);
            columns.failures.push(tally.failures);
            columns.last_error.push(tally.last_error.as_deref());
            columns.threshold.push(breaker.failures as i32);
            columns.cool_down.push(millis(breaker.cool_down));
            columns.max_cool_down.push(millis(breaker.max_cool_down));
        }
        if columns.source.is_empty() {
            return Ok(());
        }
        if columns.failures.iter().any(|n| *n > 0) {
            create(tx, &columns).await?;
        }
        sqlx::query(
            "WITH input AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::int4[], $5::text[],
                                      $6::int4[], $7::int8[], $8::int8[])
                     AS i (source, destination, successes, failures, last_error, threshold,
                           cool_down_ms, max_cool_down_ms)
             )
             UPDATE destinations g
             SET failures = n.failures, state = n.state, cool_down_ms = n.cool_down_ms,
                 open_until = CASE WHEN n.state <> 'open' THEN NULL
                                   WHEN n.was = 'open' THEN g.open_until
                                   ELSE now() + n.cool_down_ms * interval '1 millisecond' END,
                 probe_until = CASE WHEN n.state = 'open' AND n.was = 'open'
                                    THEN g.probe_until END,
                 -- What waited while the breaker was open goes first, in arrival order.
                 drain_after = CASE WHEN n.state = 'closed' AND n.was <> 'closed'
                                    THEN '00000000-0000-0000-0000-000000000000'
                                    ELSE g.drain_after END,
                 last_error = coalesce(n.last_error, g.last_error),
                 last_error_at = CASE WHEN n.last_error IS NULL THEN g.last_error_at
                                      ELSE now() END,
                 changed_at = CASE WHEN n.state = n.was THEN g.changed_at ELSE now() END
             FROM (
                 SELECT i.source, i.destination, i.last_error, g.state AS was,
                        CASE WHEN i.successes > 0 THEN 'closed'
                             WHEN g.state = 'half_open' THEN 'open'
                             WHEN g.state = 'closed' AND i.threshold > 0
                                  AND g.failures + i.failures >= i.threshold THEN 'open'
                             ELSE g.state END AS state,
                        CASE WHEN i.successes > 0 THEN 0
                             ELSE g.failures + i.failures END AS failures,
                        CASE WHEN i.successes > 0 THEN NULL
                             WHEN g.state = 'half_open'
                                  THEN least(coalesce(g.cool_down_ms, i.cool_down_ms) * 2,
                                             i.max_cool_down_ms)
                             WHEN g.state = 'closed' AND i.threshold > 0
                                  AND g.failures + i.failures >= i.threshold
                                  THEN i.cool_down_ms
                             ELSE g.cool_down_ms END AS cool_down_ms
                 FROM input i JOIN destinations g USING (source, destination)
                 WHERE i.successes = 0 OR g.failures > 0 OR g.state <> 'closed'
                 ORDER BY i.source, i.destination
                 FOR UPDATE OF g
             ) n
             WHERE g.source = n.source AND g.destination = n.destination",
        )
        .bind(&columns.source)
        .bind(&columns.destination)
        .bind(&columns.successes)
        .bind(&columns.failures)
        .bind(&columns.last_error)
        .bind(&columns.threshold)
        .bind(&columns.cool_down)
        .bind(&columns.max_cool_down)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Creates the rows of destinations that failed in this batch and have none yet.
async fn create(tx: &mut PgConnection, columns: &Columns<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO destinations (source, destination)
             SELECT source, destination FROM unnest($1::text[], $2::text[], $3::int4[])
                 AS i (source, destination, successes)
             WHERE successes = 0
             ORDER BY source, destination
             ON CONFLICT DO NOTHING",
    )
    .bind(&columns.source)
    .bind(&columns.destination)
    .bind(&columns.successes)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct Columns<'a> {
    source: Vec<&'a str>,
    destination: Vec<&'a str>,
    successes: Vec<i32>,
    failures: Vec<i32>,
    last_error: Vec<Option<&'a str>>,
    threshold: Vec<i32>,
    cool_down: Vec<i64>,
    max_cool_down: Vec<i64>,
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
