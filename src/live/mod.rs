//! The live status stream: changes of events and deliveries as they commit, to any number of
//! readers (SSE clients of the admin listener, `hookgate tail`).
//!
//! One [`Hub`] per process reads new changes once for all its readers, every 100 ms while it
//! has any (not woken by `NOTIFY`: migration 0019 says why), and hands them out through a
//! bounded broadcast. Each [`Subscription`] catches up from Postgres on its own (from a
//! `Last-Event-ID`, or when it missed batches) and then follows the broadcast; one that falls
//! a whole buffer behind is dropped, and resumes by reconnecting with its last id.

mod filter;
mod hub;
mod subscription;

pub use filter::{BadFilter, Filter};
pub use hub::{Hub, Limits};
pub use subscription::{Ended, Subscription};
