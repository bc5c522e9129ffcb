//! Dead-letter depth alerts: crossing a source's threshold logs a warning, sets
//! `hookgate_dead_letter_alert{source}` and queues a JSON notification for
//! `alert_webhook_url`; falling back below it resolves the alert the same way. Notifications
//! wait in Postgres (`alert_outbox`) until the receiver answers 2xx, so a restart neither
//! loses nor repeats one.

use crate::config::Config;
use crate::redact;
use crate::store::Store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often waiting notifications are looked for.
const SEND_PERIOD: Duration = Duration::from_secs(1);
/// Tries per notification, 1 s apart at first, doubling up to [`MAX_DELAY`]: about a day.
const NOTIFY_ATTEMPTS: i32 = 300;
const MAX_DELAY: Duration = Duration::from_secs(300);

pub struct Alerts {
    /// `(source, threshold)` for the sources that have one.
    thresholds: Vec<(String, u64)>,
    webhook: Option<(String, reqwest::Client)>,
}

impl Alerts {
    pub fn new(config: &Config) -> Self {
        let thresholds = config
            .sources
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.dead_letter_alert?)))
            .collect();
        let webhook = config.alert_webhook_url.clone().map(|url| {
            let client = config
                .alert_tls
                .client_builder()
                .timeout(NOTIFY_TIMEOUT)
                .build()
                .expect("a client with TLS settings validated at load builds");
            (url, client)
        });
        Self {
            thresholds,
            webhook,
        }
    }

    /// Compares each source's open dead letters with its threshold and announces the
    /// transitions this process is first to see.
    pub async fn observe(&self, store: &Store) {
        let notify = self.webhook.is_some();
        for (source, threshold) in &self.thresholds {
            let seen = match store
                .observe_dead_letter_alert(source, *threshold, notify)
                .await
            {
                Ok(seen) => seen,
                Err(error) => {
                    tracing::warn!(%error, %source, "cannot check the dead-letter alert");
                    continue;
                }
            };
            let (depth, firing) = (seen.depth, seen.firing);
            metrics::gauge!("hookgate_dead_letter_alert", "source" => source.clone())
                .set(if firing { 1.0 } else { 0.0 });
            match (seen.changed, firing) {
                (false, _) => {}
                (true, true) => {
                    tracing::warn!(%source, depth, threshold, "dead letters above the alert threshold")
                }
                (true, false) => {
                    tracing::info!(%source, depth, threshold, "dead letters back below the alert threshold")
                }
            }
        }
    }

    /// Sends waiting notifications, oldest first, until `shutdown`.
    pub async fn send(&self, store: Store, shutdown: CancellationToken) {
        let Some((url, client)) = &self.webhook else {
            return;
        };
        let mut tick = tokio::time::interval(SEND_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            while let Some(sent) = tokio::select! {
                sent = send_next(&store, client, url) => sent,
                () = shutdown.cancelled() => return,
            } {
                if !sent {
                    break;
                }
            }
        }
    }
}

/// Sends the oldest waiting notification if it is due: `Some(true)` when it is done with,
/// `Some(false)` when it failed (the next one waits behind it), `None` when none is due.
async fn send_next(store: &Store, client: &reqwest::Client, url: &str) -> Option<bool> {
    let next = match store.next_notification().await {
        Ok(next) => next?,
        Err(error) => {
            tracing::warn!(%error, "cannot read the alert outbox");
            return None;
        }
    };
    let outcome = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", next.id.to_string())
        .body(next.body.to_string())
        .send()
        .await;
    let failure = match outcome {
        Ok(response) if response.status().is_success() => None,
        Ok(response) => Some(format!("answered {}", response.status())),
        // reqwest names the URL in its errors; the receiver's origin is logged instead.
        Err(error) => Some(error.without_url().to_string()),
    };
    let attempt = next.attempts + 1;
    let recorded = match &failure {
        None => store.notification_done(next.id).await,
        Some(failure) if attempt >= NOTIFY_ATTEMPTS => {
            tracing::error!(receiver = %redact::origin(url), notification = next.id, failure, "alert dropped after {NOTIFY_ATTEMPTS} attempts");
            store.notification_done(next.id).await
        }
        Some(failure) => {
            tracing::warn!(receiver = %redact::origin(url), notification = next.id, attempt, failure, "alert not delivered; retrying");
            let delay = Duration::from_secs(1u64 << (attempt - 1).clamp(0, 9));
            (store.notification_failed(next.id, failure, delay.min(MAX_DELAY))).await
        }
    };
    if let Err(error) = recorded {
        tracing::warn!(%error, notification = next.id, "cannot record the alert's outcome");
        return Some(false);
    }
    Some(failure.is_none() || attempt >= NOTIFY_ATTEMPTS)
}
