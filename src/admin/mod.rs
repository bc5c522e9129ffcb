//! The private listener: the operators' API (`/v1/...`, bearer tokens with scopes) and
//! `/metrics`. Kept off the public port so providers can never reach it.

mod auth;
mod dead_letters;
mod error;
mod events;
mod operations;
mod params;
mod redeliver;

use crate::config::{Config, Scope};
use crate::operations::Runner;
use crate::problem::Problem;
use crate::replay::Replayer;
use crate::store::Store;
use auth::Tokens;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// The admin API's contract, served at `/v1/openapi.json`; a test checks it against the routes.
pub const OPENAPI: &str = include_str!("../../docs/admin-openapi.json");

pub struct Admin {
    tokens: Tokens,
    metrics_need_token: bool,
    metrics: PrometheusHandle,
    store: Store,
    replayer: Arc<Replayer>,
    runner: Arc<Runner>,
}

impl Admin {
    pub fn new(
        config: &Config,
        metrics: PrometheusHandle,
        store: Store,
        replayer: Arc<Replayer>,
        runner: Arc<Runner>,
    ) -> Self {
        Self {
            tokens: Tokens::new(&config.admin_tokens),
            metrics_need_token: config.metrics_need_token,
            metrics,
            store,
            replayer,
            runner,
        }
    }
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/events", get(events::list))
        .route("/v1/events/redeliver", post(operations::start_redeliver))
        .route("/v1/events/{id}", get(events::show))
        .route("/v1/events/{id}/redeliver", post(redeliver::redeliver))
        .route("/v1/dead-letters", get(dead_letters::list))
        .route("/v1/dead-letters/replay", post(operations::start_replay))
        .route(
            "/v1/dead-letters/{id}",
            get(dead_letters::show).delete(dead_letters::delete),
        )
        .route("/v1/dead-letters/{id}/replay", post(dead_letters::replay))
        .route(
            "/v1/operations/{id}",
            get(operations::show).delete(operations::cancel),
        )
        .route("/v1/operations/{id}/result", get(operations::result))
        .fallback(|| async { Problem::not_found("no such admin route; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .with_state(admin)
}

async fn metrics(State(admin): State<Arc<Admin>>, parts: Parts) -> Result<Response, ApiError> {
    if admin.metrics_need_token {
        admin.tokens.authorize(&parts, Scope::Read)?;
    }
    let text = admin.metrics.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::OPENAPI;
    use std::collections::BTreeSet;

    /// `(method, path)` of every `.route(..)` in `router` above, read from this file, so a route
    /// added without documenting it (or documented and never added) fails the test.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let body =
            &source[source.find("pub fn router").unwrap()..source.find(".fallback(").unwrap()];
        let mut routes = BTreeSet::new();
        for declaration in body.split(".route(").skip(1) {
            let path = declaration.split('"').nth(1).unwrap().to_string();
            for method in ["get", "post", "put", "patch", "delete"] {
                let call = format!("{method}(");
                let called = declaration.match_indices(&call).any(|(at, _)| {
                    !declaration[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    routes.insert((method.to_string(), path.clone()));
                }
            }
        }
        routes
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    routes.insert((method.clone(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let routed = routed();
        assert!(routed.len() >= 10, "{routed:?}");
        assert_eq!(documented(), routed);
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut stack = vec![&doc];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                        let pointer = target.strip_prefix('#').unwrap();
                        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }
}
