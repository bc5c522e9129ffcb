//! Where deliveries can go: the configured sources and destinations.

use super::{Store, StoreError};
use crate::config::{Config, Throttle};
use std::collections::{HashMap, HashSet};

/// The configured sources and (source, destination) pairs, each pair with its source's
/// attempt budget: what can still be delivered, and the fresh budget a replay grants.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    sources: HashSet<String>,
    budgets: HashMap<(String, String), u32>,
    /// The throttled pairs' throttles.
    throttles: HashMap<(String, String), Throttle>,
}

impl Routes {
    pub fn new(config: &Config) -> Self {
        Self {
            sources: config.sources.iter().map(|s| s.name.clone()).collect(),
            budgets: config
                .sources
                .iter()
                .flat_map(|s| {
                    s.destinations
                        .iter()
                        .map(|d| ((s.name.clone(), d.name.clone()), s.retry.max_attempts))
                })
                .collect(),
            throttles: (config.sources.iter())
                .flat_map(|s| s.destinations.iter().map(move |d| (s, d)))
                .filter(|(_, d)| !d.throttle.is_unlimited())
                .map(|(s, d)| ((s.name.clone(), d.name.clone()), d.throttle))
                .collect(),
        }
    }

    /// The throttle of deliveries from `source` to `destination`.
    pub fn throttle(&self, source: &str, destination: &str) -> Throttle {
        (self.throttles)
            .get(&(source.to_string(), destination.to_string()))
            .copied()
            .unwrap_or_default()
    }

    pub fn has_source(&self, source: &str) -> bool {
        self.sources.contains(source)
    }

    /// The configured `retry.max_attempts` of deliveries from `source` to `destination`;
    /// `None` when that destination is not configured.
    pub fn budget(&self, source: &str, destination: &str) -> Option<u32> {
        self.budgets
            .get(&(source.to_string(), destination.to_string()))
            .copied()
    }

    pub fn contains(&self, source: &str, destination: &str) -> bool {
        self.budget(source, destination).is_some()
    }

    /// The pairs as two parallel arrays, for `unnest`.
    pub(super) fn columns(&self) -> (Vec<&str>, Vec<&str>) {
        self.pairs().unzip()
    }

    /// Every configured (source, destination) pair, in no particular order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.budgets.keys().map(|(s, d)| (s.as_str(), d.as_str()))
    }
}

/// Why a delivery whose source or destination left the configuration is dead-lettered.
pub fn unrouted(source: &str, destination: &str) -> String {
    format!("destination {source}/{destination} is no longer configured")
}

impl Store {
    /// Whether a route the leader last ran with is not among `routes` (or none was recorded):
    /// deliveries may wait for a destination no longer configured.
    pub async fn routes_removed(&self, routes: &Routes) -> Result<bool, StoreError> {
        let (sources, destinations) = routes.columns();
        Ok(sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM configured_routes)
                 OR EXISTS (SELECT 1 FROM configured_routes
                            WHERE (source, destination) NOT IN
                                  (SELECT * FROM unnest($1::text[], $2::text[])))",
        )
        .bind(&sources)
        .bind(&destinations)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records `routes` as the ones the leader runs with.
    pub async fn record_routes(&self, routes: &Routes) -> Result<(), StoreError> {
        let (sources, destinations) = routes.columns();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM configured_routes")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO configured_routes (source, destination)
             SELECT * FROM unnest($1::text[], $2::text[])",
        )
        .bind(&sources)
        .bind(&destinations)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
