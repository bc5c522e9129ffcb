//! Operator commands beyond running the gateway.

pub mod dlq;
