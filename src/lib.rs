//! hookgate: a webhook receiver gateway.
//!
//! receiver -> store (Postgres) -> queue (Redis Streams) -> worker -> destinations.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod edge;
pub mod event_id;
pub mod event_type;
pub mod leader;
pub mod live;
pub mod operations;
pub mod problem;
pub mod queue;
pub mod receiver;
pub mod redact;
pub mod replay;
pub mod retention;
pub mod routing;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod time_filter;
pub mod tls;
pub mod verify;
pub mod worker;
