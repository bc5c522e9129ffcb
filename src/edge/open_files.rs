//! Open files: every connection is one, so the connection cap has to fit the process's
//! limit, with room left for what the process needs besides.

use super::ADMIN_CONNECTIONS;
use crate::config::{Config, DEFAULT_MAX_CONNECTIONS};
use std::io;

/// Files besides connections and pools: listeners, Redis connections, the runtime's own
/// (epoll, eventfd), standard streams, migrations, DNS.
const OTHER_FILES: u64 = 64;
/// Below this an automatic cap would let a handful of slow clients queue every provider
/// behind them: better to refuse to start and say why.
const MIN_AUTOMATIC: u64 = 64;

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

/// Raises the soft open-file limit to the hard one and decides how many public connections
/// (none when `receiver` is false) the process takes beside what the rest of it needs. A cap
/// set in the config must fit; without one, the cap is what fits, up to
/// [`DEFAULT_MAX_CONNECTIONS`], so a host with a low limit still starts.
pub fn connection_cap(config: &Config, receiver: bool) -> Result<usize, OpenFilesError> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    // Two Postgres pools (ingest and worker), the worker's destination connections.
    let reserve = 2 * u64::from(config.database_pool_size)
        + config.worker.concurrency as u64
        + ADMIN_CONNECTIONS as u64
        + OTHER_FILES;
    let too_few = |connections: u64| OpenFilesError::TooFew {
        connections,
        reserve,
        limit,
    };
    let wanted = match (receiver, config.edge.max_connections) {
        (false, _) => 0,
        (true, Some(wanted)) => wanted as u64,
        (true, None) => {
            let room = limit.saturating_sub(reserve);
            if room < MIN_AUTOMATIC {
                return Err(too_few(MIN_AUTOMATIC));
            }
            let cap = room.min(DEFAULT_MAX_CONNECTIONS as u64);
            if cap < DEFAULT_MAX_CONNECTIONS as u64 {
                tracing::warn!(
                    connections = cap,
                    open_file_limit = limit,
                    "the open-file limit leaves room for fewer public connections than the default {DEFAULT_MAX_CONNECTIONS}; raise it (ulimit -n, LimitNOFILE=) or set edge.max_connections"
                );
            }
            cap
        }
    };
    if wanted + reserve > limit {
        return Err(too_few(wanted));
    }
    Ok(wanted as usize)
}
