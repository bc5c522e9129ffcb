//! Recording a claim's outcome so that no outcome can trap its delivery. An entry whose
//! outcome is not recorded is reclaimed and delivered again; if Postgres refuses the outcome
//! itself, that would repeat until the attempt budget is spent. Instead, after a few tries,
//! each attempt is recorded on its own, and one still refused ends as a `pipeline` dead letter.

use super::buried;
use crate::store::deliveries::{Attempt, ClaimedEvent, Next};
use crate::store::outcomes::Outcome;
use crate::store::rules::Rules;
use crate::store::{Store, StoreError};
use std::time::Duration;

/// Tries of the whole outcome before it is taken apart.
const TRIES: u32 = 3;
/// The pause after the first failed try; it doubles after each.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Records `attempts`, or dead-letters those whose outcome Postgres refuses. Returns whether
/// every delivery is settled, so that the entry can be finished; `false` leaves it pending to
/// be reclaimed (Postgres unreachable, or its lease lost meanwhile).
pub async fn settle(
    store: &Store,
    rules: &Rules,
    event: &ClaimedEvent,
    attempts: &[Attempt],
) -> bool {
    let mut pause = FIRST_PAUSE;
    let mut tries = 1;
    let error = loop {
        match store.record(&[Outcome { event, attempts }], rules).await {
            Ok(_) => return true,
            Err(error) if tries == TRIES => break error,
            Err(error) => {
                tracing::debug!(%error, event = %event.event_id, tries, "recording the outcome failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
        }
    };
    if !refused(&error) {
        tracing::warn!(%error, event = %event.event_id, "cannot record the outcome; the entry will be reclaimed");
        return false;
    }
    tracing::warn!(%error, event = %event.event_id, "Postgres refuses the outcome; recording each delivery on its own");
    let mut settled = true;
    for attempt in attempts {
        let alone = Outcome {
            event,
            attempts: std::slice::from_ref(attempt),
        };
        let error = match store.record(&[alone], rules).await {
            Ok(_) => continue,
            Err(error) => error,
        };
        let reason = format!("the outcome could not be recorded: {error}");
        match store
            .bury_unrecorded(event, &attempt.destination, &reason)
            .await
        {
            // An attempt that was the last already counted as a dead letter.
            Ok(rows) if attempt.next != Next::DeadLetter => buried(&rows),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, event = %event.event_id, destination = %attempt.destination, "cannot dead-letter an unrecordable outcome; the entry will be reclaimed");
                settled = false;
            }
        }
    }
    settled
}

/// Postgres answered, and said no: trying the same statement again will not help. Anything
/// else (no connection, a timeout) may pass.
fn refused(error: &StoreError) -> bool {
    matches!(error, StoreError::Db(sqlx::Error::Database(_)))
}
