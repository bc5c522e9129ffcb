//! The operators' audit log (`admin_actions`): who replayed, redelivered, deleted, purged or
//! cancelled what, and what came of it.
//!
//! Rows are written by [`record`] inside the transaction of the action itself, by the store
//! functions that take an [`Actor`]: an action that rolls back leaves no record, and one that
//! commits cannot lose its record. An action that finds nothing to change (a dead letter
//! replayed meanwhile, a redelivery of deliveries all still pending, a cancel of an operation
//! already over) records nothing; an action refused before it starts never reaches the store.

use super::{Keyset, Store, StoreError};
use crate::config::CLI_ACTOR_PREFIX;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

/// The actor of a CLI command whose user is not known.
const UNKNOWN_USER: &str = "unknown";

/// Who acts: an admin token by its configured name, or `cli:<user>` for the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The admin API token named `name` in `[[admin_tokens]]` (never the token itself).
    pub fn token(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The command line: `cli:$USER`, or `cli:unknown` when `USER` is unset or empty.
    pub fn cli() -> Self {
        Self::cli_user(std::env::var("USER").ok().as_deref())
    }

    fn cli_user(user: Option<&str>) -> Self {
        let user = user.map(str::trim).filter(|u| !u.is_empty());
        Self(format!(
            "{CLI_ACTOR_PREFIX}{}",
            user.unwrap_or(UNKNOWN_USER)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What was done; the `action` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replay,
    Redeliver,
    /// One dead letter deleted through the admin API.
    Delete,
    /// Dead letters deleted with `hookgate dlq purge`.
    Purge,
    /// A bulk operation cancelled.
    Cancel,
    /// A destination paused.
    Pause,
    /// A paused destination resumed.
    Resume,
}

impl Action {
    pub const ALL: [Self; 7] = [
        Self::Replay,
        Self::Redeliver,
        Self::Delete,
        Self::Purge,
        Self::Cancel,
        Self::Pause,
        Self::Resume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Redeliver => "redeliver",
            Self::Delete => "delete",
            Self::Purge => "purge",
            Self::Cancel => "cancel",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Every action's name, comma-separated, for messages naming what is accepted.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// One recorded action.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AdminAction {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    /// What it acted on: dead letter ids, an event and its destinations, a bulk filter, an
    /// operation.
    pub target: Json<Value>,
    /// What came of it: counts and the ids changed, or the operation started.
    pub outcome: Json<Value>,
}

/// Which actions a listing shows. `since` is inclusive, `until` exclusive, both on `at`.
#[derive(Debug, Clone, Default)]
pub struct AdminActionFilter {
    pub action: Option<Action>,
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Writes one action's record in the caller's transaction, which commits or rolls back the
/// record with the action.
pub(super) async fn record(
    tx: &mut PgConnection,
    actor: &Actor,
    action: Action,
    target: Value,
    outcome: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_actions (id, actor, action, target, outcome)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(actor.as_str())
    .bind(action.as_str())
    .bind(Json(target))
    .bind(Json(outcome))
    .execute(tx)
    .await?;
    Ok(())
}

impl Store {
    /// Newest first, at most `limit`, strictly older than `before` when given.
    pub async fn list_admin_actions(
        &self,
        filter: &AdminActionFilter,
        before: Option<Keyset>,
        limit: u32,
    ) -> Result<Vec<AdminAction>, StoreError> {
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT id, at, actor, action, target, outcome FROM admin_actions WHERE TRUE",
        );
        if let Some(action) = filter.action {
            query.push(" AND action = ").push_bind(action.as_str());
        }
        if let Some(actor) = &filter.actor {
            query.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(since) = filter.since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(until) = filter.until {
            query.push(" AND at < ").push_bind(until);
        }
        if let Some(before) = before {
            query
                .push(" AND (at, id) < (")
                .push_bind(before.at)
                .push(", ")
                .push_bind(before.id)
                .push(")");
        }
        query
            .push(" ORDER BY at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        Ok(query
            .build_query_as::<AdminAction>()
            .fetch_all(self.pool())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_acts_as_its_user_or_as_unknown() {
        assert_eq!(Actor::cli_user(Some("alice")).as_str(), "cli:alice");
        assert_eq!(Actor::cli_user(Some(" ")).as_str(), "cli:unknown");
        assert_eq!(Actor::cli_user(None).as_str(), "cli:unknown");
        assert_eq!(Actor::token("oncall").as_str(), "oncall");
    }

    #[test]
    fn actions_parse_from_their_names_only() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("Replay"), None);
        assert_eq!(Action::parse("deleted"), None);
        assert!(Action::names().starts_with("replay, redeliver, delete"));
    }
}
