//! The listeners' edge: what a client may hold of the process. Every connection gets a
//! deadline per phase (head, body, keep-alive idle), a listener holds at most so many
//! connections open, and shutdown closes at once the connections that owe nobody an answer.
//!
//! hyper's own header timer is not used: it starts when a connection becomes idle, so it
//! cannot let a kept-alive connection idle longer than a head may take, and on shutdown hyper
//! keeps a new connection that sent half a head until that timer fires.

mod connection;
mod open_files;
mod stage;
mod watched;

pub use open_files::{OpenFilesError, connection_cap};

use crate::config::EdgeConfig;
use axum::Router;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::RequestBodyDeadlineLayer;

/// The address a request's connection comes from, in the request's extensions: what a
/// source's `allow_ips` checks (through `trusted_proxies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Connections the admin listener holds open: operators and a metrics scraper need few, and
/// a cap keeps them inside the process's open-file budget.
pub const ADMIN_CONNECTIONS: usize = 64;

/// After an accept error that is not about one connection (out of files, of memory), wait
/// this long before the next accept rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
}

impl From<&EdgeConfig> for Timeouts {
    fn from(edge: &EdgeConfig) -> Self {
        Self {
            header: edge.header_timeout,
            body: edge.body_timeout,
            idle: edge.idle_timeout,
        }
    }
}

/// Serves `router` (HTTP/1.1) on `listener` until `shutdown`, then waits for the connections
/// still answering a request. A request whose body outlives its deadline reads a
/// [`tower_http::timeout::TimeoutError`] from it.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    max_connections: usize,
    shutdown: CancellationToken,
) {
    let router = router.layer(RequestBodyDeadlineLayer::new(timeouts.body));
    // Waiting for a slot before accepting leaves further connections in the kernel's queue,
    // where they cost the process no file.
    let slots = Arc::new(Semaphore::new(max_connections));
    let connections = TaskTracker::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let router = router.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    connection::serve(stream, PeerAddr(peer), router, timeouts, shutdown).await;
                    drop(slot);
                });
            }
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                tracing::error!(%error, "accept failed; retrying in {}", humantime::format_duration(ACCEPT_BACKOFF));
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Errors about the one connection being accepted, not about the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
