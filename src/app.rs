//! Wiring: one process runs the receiver, the admin listener and the background tasks, and
//! stops them in order on shutdown.

use crate::config::Config;
use crate::queue::stream::Streams;
use crate::receiver::{self, Receiver};
use crate::store::Store;
use crate::store::outbox::OutboxConfirmer;
use crate::{admin, telemetry};
use anyhow::Context;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// In-flight requests get this long to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// A running gateway.
pub struct Gateway {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// Migrates the database, binds both listeners and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics();
        let store = Store::connect_lazy(&config.database_url, config.database_pool_size)?;
        store
            .migrate()
            .await
            .context("cannot apply database migrations")?;
        let streams = Streams::new(&config.redis_url, &config.stream_prefix)?;
        let public = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.admin_listen))?;
        let public_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;

        let (outbox, outbox_task) = OutboxConfirmer::spawn(store.clone());
        let receiver = Arc::new(Receiver {
            config: Arc::new(config),
            store,
            streams,
            outbox,
        });
        let shutdown = CancellationToken::new();
        let public = axum::serve(public, telemetry::traced(receiver::router(receiver)))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        let admin = axum::serve(admin, admin::router(metrics.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        let upkeep = tokio::spawn(metrics_upkeep(metrics, shutdown.clone()));
        let deadline = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tokio::time::sleep(DRAIN_DEADLINE).await;
            }
        };
        let task = tokio::spawn(async move {
            tokio::select! {
                served = async { tokio::try_join!(public, admin) } => { served?; }
                () = deadline => tracing::warn!("requests still in flight after {DRAIN_DEADLINE:?}; exiting anyway"),
            }
            // The routers are gone, and with them every confirmer handle: the outbox task
            // drains what is queued and ends.
            outbox_task.await?;
            upkeep.await?;
            Ok(())
        });
        tracing::info!(%public_addr, %admin_addr, "hookgate listening");
        Ok(Self {
            public_addr,
            admin_addr,
            shutdown,
            task,
        })
    }

    /// Cancelling it stops accepting connections and lets in-flight requests finish.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the gateway has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
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
