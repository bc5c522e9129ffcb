//! The private listener: the operators' API (`/v1/...`, bearer tokens with scopes) and
//! `/metrics`. Kept off the public port so providers can never reach it.

mod admin_actions;
mod auth;
mod console;
mod dead_letters;
mod destinations;
mod error;
mod events;
mod operations;
mod params;
mod redeliver;
mod sources;
mod stream;

use crate::config::{Config, Scope};
use crate::live::Hub;
use crate::operations::Runner;
use crate::problem::Problem;
use crate::replay::Replayer;
use crate::store::Store;
use auth::Tokens;
use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// The admin API's contract, served at `/v1/openapi.json`; tests hold it against the route
/// table.
pub const OPENAPI: &str = include_str!("../../docs/admin-openapi.json");

pub struct Admin {
    tokens: Tokens,
    metrics_need_token: bool,
    metrics: PrometheusHandle,
    store: Store,
    replayer: Arc<Replayer>,
    runner: Arc<Runner>,
    hub: Arc<Hub>,
    /// The configured sources' names, for the traffic listing.
    sources: Vec<String>,
}

impl Admin {
    pub fn new(
        config: &Config,
        metrics: PrometheusHandle,
        store: Store,
        replayer: Arc<Replayer>,
        runner: Arc<Runner>,
        hub: Arc<Hub>,
    ) -> Self {
        Self {
            tokens: Tokens::new(&config.admin_tokens),
            metrics_need_token: config.metrics_need_token,
            metrics,
            store,
            replayer,
            runner,
            hub,
            sources: config.sources.iter().map(|s| s.name.clone()).collect(),
        }
    }
}

/// The methods admin routes answer to.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Delete => MethodFilter::DELETE,
        }
    }
}

/// One admin route: the router takes its method from `verb`, so the table says exactly what
/// is routed.
struct Route {
    verb: Verb,
    path: &'static str,
    handler: Box<dyn FnOnce(MethodFilter) -> MethodRouter<Arc<Admin>>>,
}

fn route<H, T>(verb: Verb, path: &'static str, handler: H) -> Route
where
    H: Handler<T, Arc<Admin>>,
    T: 'static,
{
    Route {
        verb,
        path,
        handler: Box::new(move |filter| on(filter, handler)),
    }
}

/// Every admin API route. The router is built from this table (and the console's static
/// assets) alone, so holding the table against docs/admin-openapi.json (the tests below)
/// covers everything the API can route.
fn routes() -> Vec<Route> {
    use Verb::{Delete, Get, Post};
    vec![
        route(Get, "/metrics", metrics),
        route(Get, "/v1/openapi.json", openapi),
        route(Get, "/v1/events", events::list),
        route(Post, "/v1/events/redeliver", operations::start_redeliver),
        route(Get, "/v1/events/{id}", events::show),
        route(Post, "/v1/events/{id}/redeliver", redeliver::redeliver),
        route(Get, "/v1/events/{id}/request", events::request),
        route(Get, "/v1/events/{id}/stream", stream::event),
        route(Get, "/v1/stream", stream::all),
        route(Get, "/v1/dead-letters", dead_letters::list),
        route(Post, "/v1/dead-letters/replay", operations::start_replay),
        route(Get, "/v1/dead-letters/{id}", dead_letters::show),
        route(Delete, "/v1/dead-letters/{id}", dead_letters::delete),
        route(Post, "/v1/dead-letters/{id}/replay", dead_letters::replay),
        route(Get, "/v1/operations/{id}", operations::show),
        route(Delete, "/v1/operations/{id}", operations::cancel),
        route(Get, "/v1/operations/{id}/result", operations::result),
        route(Get, "/v1/admin-actions", admin_actions::list),
        route(Get, "/v1/sources", sources::list),
        route(Get, "/v1/destinations", destinations::list),
        route(
            Post,
            "/v1/destinations/{source}/{name}/pause",
            destinations::pause,
        ),
        route(
            Post,
            "/v1/destinations/{source}/{name}/resume",
            destinations::resume,
        ),
    ]
}

pub fn router(admin: Arc<Admin>) -> Router {
    routes()
        .into_iter()
        // Routes sharing a path merge into one method router.
        .fold(Router::new(), |router, r| {
            router.route(r.path, (r.handler)(r.verb.filter()))
        })
        // The console is static assets over the same API, outside the API's contract.
        .merge(console::router())
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
    use super::{OPENAPI, Verb, routes};
    use std::collections::BTreeSet;

    /// `(method, path)` of every route the router is built from.
    fn routed() -> BTreeSet<(String, String)> {
        routes()
            .iter()
            .map(|route| {
                let method = match route.verb {
                    Verb::Get => "get",
                    Verb::Post => "post",
                    Verb::Delete => "delete",
                };
                (method.to_string(), route.path.to_string())
            })
            .collect()
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

    /// Nothing routable is undocumented and nothing documented is missing from the table;
    /// tests/admin.rs requests every documented route from a running listener.
    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        assert_eq!(documented(), routed());
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
