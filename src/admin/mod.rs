//! The private listener: metrics now, the operators' API later. Kept off the public port so
//! providers can never reach it.

use crate::problem::Problem;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

pub fn router(metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                }
            }),
        )
        .fallback(|| async { Problem::not_found("no such admin route") })
}
