//! SIGTERM / SIGINT handling.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGTERM (orchestrators) or SIGINT (Ctrl-C).
pub async fn signalled() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}
