//! Open files: every connection is one, so the connection cap has to fit the process's
//! limit, with room left for what the process needs besides.

use super::ADMIN_CONNECTIONS;
use crate::config::Config;
use std::io;

/// Files besides connections and pools: listeners, Redis connections, the runtime's own
/// (epoll, eventfd), standard streams, migrations, DNS.
const OTHER_FILES: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum OpenFilesError {
    #[error("cannot read or raise the open-file limit: {0}")]
    Limit(#[from] io::Error),
    #[error(
        "{connections} public connections (edge.max_connections) plus {reserve} files for pools, the admin listener and the rest need {} open files, but this process may open only {limit}: raise its limit (ulimit -n, LimitNOFILE=) or lower edge.max_connections",
        .connections + .reserve
    )]
    TooFew {
        connections: u64,
        reserve: u64,
        limit: u64,
    },
}

/// Raises the soft open-file limit to the hard one, then checks that `connections` public
/// connections fit beside what the rest of the process needs.
pub fn ensure_open_files(config: &Config, connections: usize) -> Result<(), OpenFilesError> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    // Two Postgres pools (ingest and worker), the worker's destination connections.
    let reserve = 2 * u64::from(config.database_pool_size)
        + config.worker.concurrency as u64
        + ADMIN_CONNECTIONS as u64
        + OTHER_FILES;
    let connections = connections as u64;
    if connections + reserve > limit {
        return Err(OpenFilesError::TooFew {
            connections,
            reserve,
            limit,
        });
    }
    Ok(())
}
