//! Wiring: one process runs the receiver, the worker and the admin listener (or some of
//! them), and stops them in order on shutdown.

use crate::admin::Admin;
use crate::config::{Config, RedisUrl};
use crate::live::{Hub, Limits};
use crate::operations::Runner;
use crate::queue::stream::Streams;
use crate::receiver::{self, Batcher, IngestBudget, Readiness, Receiver, Tally, TypeLabels};
use crate::replay::Replayer;
use crate::store::Store;
use crate::worker::Worker;
use crate::{admin, edge, leader, telemetry};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// In-flight requests get this long to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Which parts a process runs: receivers and workers scale out separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub receiver: bool,
    pub worker: bool,
}

impl Roles {
    pub const ALL: Self = Self {
        receiver: true,
        worker: true,
    };
    pub const RECEIVER: Self = Self {
        receiver: true,
        worker: false,
    };
    pub const WORKER: Self = Self {
        receiver: false,
        worker: true,
    };
}

/// How logs name the roles: `receiver, worker`.
impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [(self.receiver, "receiver"), (self.worker, "worker")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// A running gateway.
pub struct Gateway {
    /// The webhook listener, when this process receives.
    pub public_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// Checks that the connection cap fits the open-file limit, migrates the database, binds
    /// the listeners and starts the roles' tasks.
    pub async fn start(config: Config, roles: Roles) -> anyhow::Result<Self> {
        let public_connections = edge::connection_cap(&config, roles.receiver)?;
        let metrics = telemetry::metrics();
        let store = Store::connect_lazy(&config.database_url, config.database_pool_size)?;
        let worker_store =
            Store::connect_lazy_relaxed(&config.database_url, config.database_pool_size)?;
        store
            .migrate()
            .await
            .context("cannot apply database migrations")?;
        let streams = Streams::new(&config.redis_url, &config.stream_prefix)?;
        warn_if_unreachable(&streams, &config.redis_url).await;
        let public = match roles.receiver {
            true => Some(
                TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.listen))?,
            ),
            false => None,
        };
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
        let public_addr = public.as_ref().map(TcpListener::local_addr).transpose()?;
        let admin_addr = admin.local_addr()?;

        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let replayer = Arc::new(Replayer::new(&config, store.clone(), streams.clone()));
        let consumer = Worker::consumer_name();
        // Only worker processes lead: receivers stay light, and the scheduler needs workers.
        let (leader, leading) = match roles.worker {
            true => {
                let duties = leader::Duties {
                    config: config.clone(),
                    store: worker_store.clone(),
                    streams: streams.clone(),
                    consumer: consumer.clone(),
                };
                let (task, leading) = leader::spawn(duties, shutdown.clone());
                (Some(task), leading)
            }
            false => (None, tokio::sync::watch::channel(false).1),
        };
        // Every process runs the operations it starts; the leader takes over those whose
        // runner died, so one started anywhere survives any one restart.
        let runner = Arc::new(Runner::new(store.clone(), replayer.clone()));
        let operations = tokio::spawn(runner.clone().run(leading, shutdown.clone()));
        // One reader of the live status stream for all of this process's SSE clients.
        let (hub, hub_task) = Hub::spawn(store.clone(), Limits::default(), shutdown.clone());
        let admin_api = Arc::new(Admin::new(
            &config,
            metrics.clone(),
            store.clone(),
            replayer,
            runner,
            hub,
        ));
        let worker = roles.worker.then(|| {
            Worker::spawn(
                config.clone(),
                worker_store,
                streams.clone(),
                consumer,
                shutdown.clone(),
            )
        });
        let timeouts = edge::Timeouts::from(&config.edge);
        let tally = Tally::default();
        // Counted until the listener has stopped, then flushed once more.
        let tally_task = public.is_some().then(|| {
            let stopped = CancellationToken::new();
            let task = tokio::spawn(tally.clone().run(store.clone(), stopped.clone()));
            (task, stopped)
        });
        let public = public.map(|listener| {
            let receiver = Arc::new(Receiver {
                batcher: Batcher::spawn(store.clone(), streams.clone(), config.edge.ingest_queue),
                budget: IngestBudget::new(config.edge.ingest_memory),
                type_labels: TypeLabels::new(&config),
                readiness: Readiness::default(),
                tally,
                config: config.clone(),
                store,
                streams,
            });
            edge::serve(
                listener,
                receiver::router(receiver),
                timeouts,
                public_connections,
                shutdown.clone(),
            )
        });
        let admin = edge::serve(
            admin,
            telemetry::traced(admin::router(admin_api)),
            timeouts,
            edge::ADMIN_CONNECTIONS,
            shutdown.clone(),
        );
        let upkeep = tokio::spawn(metrics_upkeep(metrics, shutdown.clone()));
        let deadline = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(DRAIN_DEADLINE).await;
            }
        };
        let task = tokio::spawn(async move {
            let servers = async {
                match public {
                    Some(public) => {
                        tokio::join!(public, admin);
                    }
                    None => admin.await,
                }
            };
            tokio::select! {
                () = servers => {},
                () = deadline => tracing::warn!("requests still in flight after {}; exiting anyway", humantime::format_duration(DRAIN_DEADLINE)),
            }
            if let Some((task, stopped)) = tally_task {
                stopped.cancel();
                task.await?;
            }
            if let Some(worker) = worker {
                worker.await?;
            }
            if let Some(leader) = leader {
                leader.await?;
            }
            upkeep.await?;
            operations.await?;
            hub_task.await?;
            Ok(())
        });
        match public_addr {
            Some(public_addr) => {
                tracing::info!(%public_addr, %admin_addr, %roles, "hookgate started");
            }
            None => tracing::info!(%admin_addr, %roles, "hookgate started"),
        }
        Ok(Self {
            public_addr,
            admin_addr,
            shutdown,
            task,
        })
    }

    /// Cancelling it stops accepting connections and lets in-flight work finish.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the gateway has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// hookgate runs without Redis (webhooks are stored, and enqueued once it is back), so an
/// unreachable Redis at start is a warning that names where and why, once, not an error.
async fn warn_if_unreachable(streams: &Streams, url: &RedisUrl) {
    let answer = tokio::time::timeout(Duration::from_secs(5), streams.ping()).await;
    let cause = match answer {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 5s".to_string(),
    };
    let address = |url: &str| {
        redis::IntoConnectionInfo::into_connection_info(url)
            .map(|info| info.addr().to_string())
            .unwrap_or_else(|_| crate::redact::url(url))
    };
    let address = match url {
        RedisUrl::Node(url) => address(url),
        RedisUrl::Cluster(seeds) => {
            let seeds: Vec<String> = seeds.iter().map(|s| address(s)).collect();
            format!("the cluster's seeds {}", seeds.join(", "))
        }
    };
    tracing::warn!(
        "cannot reach Redis at {address}: {cause}; webhooks are still stored and will be queued once it answers"
    );
}

/// Histograms keep raw samples until upkeep folds them into buckets.
async fn metrics_upkeep(
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => metrics.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}
