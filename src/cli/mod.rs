//! Operator commands beyond running the gateway.

pub mod admin_actions;
pub mod args;
pub mod destinations;
pub mod dlq;
pub mod events;
pub mod retention;
pub mod send;
pub mod tail;
