//! The admin API's one error type; every variant renders as problem+json.

use crate::problem::Problem;
use crate::store::StoreError;
use crate::store::dead_letters::DeadLetterError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Clients retry after this many seconds when Postgres is unavailable.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this token lacks the {0:?} scope")]
    Forbidden(&'static str),
    /// A query parameter, path segment or body that cannot be used: a 4xx, usually 400.
    #[error("{detail}")]
    BadRequest {
        status: StatusCode,
        slug: &'static str,
        detail: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn bad(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            status: StatusCode::BAD_REQUEST,
            slug,
            detail: detail.into(),
        }
    }
}

impl From<DeadLetterError> for ApiError {
    fn from(error: DeadLetterError) -> Self {
        match error {
            DeadLetterError::NotFound(_) => Self::NotFound(error.to_string()),
            DeadLetterError::AlreadyReplayed { .. } | DeadLetterError::Unroutable { .. } => {
                Self::Conflict(error.to_string())
            }
            DeadLetterError::Store(error) => Self::Store(error),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad("bad-query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad("bad-path", rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::BadRequest {
            status: rejection.status(),
            slug: "bad-body",
            detail: rejection.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        match self {
            Self::Unauthorized(_) => {
                let mut response = Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Missing or invalid bearer token",
                    detail,
                )
                .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"hookgate-admin\""),
                );
                response
            }
            Self::Forbidden(_) => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Token lacks a scope",
                detail,
            )
            .into_response(),
            Self::BadRequest { status, slug, .. } => {
                Problem::new(status, slug, "Bad request", detail).into_response()
            }
            Self::NotFound(_) => Problem::not_found(detail).into_response(),
            Self::Conflict(_) => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail).into_response()
            }
            // The database refused a value (SQLSTATE class 22, data exception): whatever
            // slipped past validation, it is the request that is wrong, not the database.
            Self::Store(StoreError::Db(sqlx::Error::Database(error)))
                if error.code().is_some_and(|code| code.starts_with("22")) =>
            {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-value",
                    "Bad request",
                    "a value in the request cannot be stored or compared",
                )
                .into_response()
            }
            Self::Store(error) => {
                tracing::warn!(%error, "admin request failed on Postgres");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store-unavailable",
                    "Postgres is unavailable",
                    "the database did not answer; try again shortly",
                )
                .retry_after(UNAVAILABLE_RETRY_SECS)
                .into_response()
            }
        }
    }
}
