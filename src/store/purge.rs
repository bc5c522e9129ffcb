//! Deleting dead letters (`DELETE /v1/dead-letters/{id}`, `hookgate dlq purge`): the record
//! goes, the delivery stays dead. Like replays, purges by filter walk the table in keyset
//! order, one short transaction per [`BATCH`], and each transaction records what it deleted.

use super::admin_actions::{self, Action, Actor};
use super::dead_letters::{BATCH, Cursor, DeadLetterFilter, push_keyset};
use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

/// What one purge batch did.
#[derive(Debug, Default)]
pub struct PurgeBatch {
    pub purged: Vec<Uuid>,
    pub next: Option<Cursor>,
}

impl Store {
    /// Deletes `ids` (at most [`BATCH`]); their deliveries stay dead. Recorded as `actor`'s
    /// `action` ([`Action::Delete`] through the API, [`Action::Purge`] from the CLI) if any
    /// was deleted.
    pub async fn purge_dead_letters(
        &self,
        ids: &[Uuid],
        actor: &Actor,
        action: Action,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let rows: Vec<(Uuid, DateTime<Utc>)> =
            sqlx::query_as("DELETE FROM dead_letters WHERE id = ANY($1) RETURNING id, created_at")
                .bind(ids)
                .fetch_all(&mut *tx)
                .await?;
        let purged = oldest_first(rows);
        let target = json!({ "dead_letters": ids });
        record_deleted(&mut tx, actor, action, target, &purged).await?;
        tx.commit().await?;
        Ok(purged)
    }

    /// Deletes the next [`BATCH`] dead letters matching `filter` after `after`, oldest first;
    /// each batch that deletes any is recorded as `actor`'s purge. Call again with the
    /// returned `next` until it is `None`.
    pub async fn purge_dead_letters_matching(
        &self,
        filter: &DeadLetterFilter,
        after: Option<Cursor>,
        actor: &Actor,
    ) -> Result<PurgeBatch, StoreError> {
        let mut query = QueryBuilder::new(
            "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE TRUE",
        );
        push_keyset(&mut query, filter, after);
        query.push(") RETURNING id, created_at");
        let mut tx = self.pool().begin().await?;
        let rows: Vec<(Uuid, DateTime<Utc>)> = query.build_query_as().fetch_all(&mut *tx).await?;
        let next = match rows.iter().max_by_key(|&&(id, at)| (at, id)) {
            Some(&(id, at)) if rows.len() >= BATCH => Some(Cursor { at, id }),
            _ => None,
        };
        let purged = oldest_first(rows);
        let target = json!({ "filter": filter });
        record_deleted(&mut tx, actor, Action::Purge, target, &purged).await?;
        tx.commit().await?;
        Ok(PurgeBatch { purged, next })
    }
}

/// The ids of deleted `(id, created_at)` rows, in the order they were created: `DELETE ..
/// RETURNING` has none of its own.
fn oldest_first(mut rows: Vec<(Uuid, DateTime<Utc>)>) -> Vec<Uuid> {
    rows.sort_unstable_by_key(|&(id, at)| (at, id));
    rows.into_iter().map(|(id, _)| id).collect()
}

/// Records a deletion of dead letters in its transaction, unless nothing was deleted.
async fn record_deleted(
    tx: &mut PgConnection,
    actor: &Actor,
    action: Action,
    target: Value,
    deleted: &[Uuid],
) -> Result<(), sqlx::Error> {
    if deleted.is_empty() {
        return Ok(());
    }
    let outcome = json!({ "deleted": deleted.len(), "dead_letters": deleted });
    admin_actions::record(tx, actor, action, target, outcome).await
}
