//! Dead-letter depth alerts: crossing a source's threshold logs a warning, sets
//! `hookgate_dead_letter_alert{source}` and POSTs a JSON alert to `alert_webhook_url`;
//! falling back below it resolves the alert the same way.

use crate::config::Config;
use crate::redact;
use crate::store::Store;
use chrono::Utc;
use serde::Serialize;
use std::time::Duration;

/// Tries per notification: 1 s, 2 s, 4 s, 8 s apart, about 15 s in all.
const NOTIFY_ATTEMPTS: u32 = 5;
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Alerts {
    /// `(source, threshold)` for the sources that have one.
    thresholds: Vec<(String, u64)>,
    webhook: Option<(String, reqwest::Client)>,
}

#[derive(Debug, Clone, Serialize)]
struct Notification {
    alert: &'static str,
    state: &'static str,
    source: String,
    depth: i64,
    threshold: u64,
    at: chrono::DateTime<Utc>,
}

impl Alerts {
    pub fn new(config: &Config) -> Self {
        let thresholds = config
            .sources
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.dead_letter_alert?)))
            .collect();
        let webhook = config.alert_webhook_url.clone().map(|url| {
            let client = reqwest::Client::builder()
                .timeout(NOTIFY_TIMEOUT)
                .build()
                .expect("a plain HTTP client builds");
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
        for (source, threshold) in &self.thresholds {
            let seen = match store.observe_dead_letter_alert(source, *threshold).await {
                Ok(seen) => seen,
                Err(error) => {
                    tracing::warn!(%error, %source, "cannot check the dead-letter alert");
                    continue;
                }
            };
            let (depth, firing) = (seen.depth, seen.firing);
            metrics::gauge!("hookgate_dead_letter_alert", "source" => source.clone())
                .set(if firing { 1.0 } else { 0.0 });
            if !seen.changed {
                continue;
            }
            let notification = Notification {
                alert: "dead_letter_depth",
                state: if firing { "firing" } else { "resolved" },
                source: source.clone(),
                depth,
                threshold: *threshold,
                at: Utc::now(),
            };
            match firing {
                true => {
                    tracing::warn!(%source, depth, threshold, "dead letters above the alert threshold")
                }
                false => {
                    tracing::info!(%source, depth, threshold, "dead letters back below the alert threshold")
                }
            }
            if let Some((url, client)) = &self.webhook {
                // Sent in the background, so a slow alert receiver never delays the scheduler.
                tokio::spawn(notify(client.clone(), url.clone(), notification));
            }
        }
    }
}

async fn notify(client: reqwest::Client, url: String, notification: Notification) {
    let mut delay = Duration::from_secs(1);
    let body = serde_json::to_vec(&notification).expect("a notification serializes");
    for attempt in 1..=NOTIFY_ATTEMPTS {
        let outcome = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let failure = match outcome {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("answered {}", response.status()),
            // reqwest names the URL in its errors; the receiver's origin is logged instead.
            Err(error) => error.without_url().to_string(),
        };
        tracing::warn!(receiver = %redact::origin(&url), attempt, failure, source = %notification.source, "alert not delivered");
        if attempt < NOTIFY_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(receiver = %redact::origin(&url), source = %notification.source, state = notification.state, "alert dropped after {NOTIFY_ATTEMPTS} attempts");
}
