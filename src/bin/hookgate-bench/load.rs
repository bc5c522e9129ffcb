//! The ingest load generator: pre-signed webhooks, sent closed loop (a fixed number of
//! requests in flight) or open loop (at a fixed rate, latency counted from each request's
//! scheduled send time so that a stalled server cannot hide its stall by slowing the sender:
//! no coordinated omission).

use crate::report::{self, Latency};
use crate::sign::{self, Preset};
use bytes::Bytes;
use hdrhistogram::Histogram;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// One webhook, signed and ready to send.
pub struct Request {
    headers: HeaderMap,
    body: Bytes,
}

/// Signs `count` webhooks with unique event ids (random UUIDs) and `timestamp` = now, so a
/// timed run must end within the source's tolerance (5 minutes by default) of this call.
pub fn prepare(preset: Preset, secret: &str, count: usize, size: usize) -> Vec<Request> {
    let now = unix_now();
    (0..count)
        .map(|_| {
            let id = Uuid::new_v4().to_string();
            let signed = sign::sign(preset, secret, &id, now, sign::body(preset, &id, size));
            let headers = signed
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                        HeaderValue::from_str(value).expect("signed header values are ASCII"),
                    )
                })
                .collect();
            Request {
                headers,
                body: Bytes::from(signed.body),
            }
        })
        .collect()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// `concurrency` requests in flight, each sent when the previous one of its lane answered.
    Closed { concurrency: usize },
    /// One request every 1/`rate` s; at most `max_in_flight` outstanding (beyond that the
    /// schedule slips, and the slip counts as latency).
    Open { rate: f64, max_in_flight: usize },
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed { concurrency } => write!(f, "closed loop, concurrency {concurrency}"),
            Self::Open { rate, .. } => write!(f, "open loop, {rate:.0} req/s"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub mode: Mode,
    pub sent: usize,
    pub accepted: u64,
    pub duplicate: u64,
    /// Failures by HTTP status (`"503"`) or transport error kind (`"connect"`, `"timeout"`).
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub accepted_per_s: f64,
    pub latency: Latency,
}

impl IngestReport {
    pub fn print(&self, label: &str) {
        eprintln!(
            "{label}: {} sent, {} accepted, {} duplicate in {:.2} s = {:.0} accepted/s ({})",
            self.sent,
            self.accepted,
            self.duplicate,
            self.elapsed_s,
            self.accepted_per_s,
            self.mode
        );
        eprintln!("{label}:   latency {}", self.latency.line());
        if !self.errors.is_empty() {
            eprintln!("{label}:   errors {:?}", self.errors);
        }
    }
}

/// The event id of each accepted webhook and when its `200` arrived, for delivery latency.
pub type Accepts = Vec<(Uuid, Instant)>;

#[derive(Deserialize)]
struct Answer {
    id: Uuid,
    status: String,
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    duplicate: u64,
    errors: BTreeMap<String, u64>,
    accepts: Accepts,
}

struct Shared {
    client: reqwest::Client,
    /// Request `i` goes to `urls[i % urls.len()]`: several receivers share the load evenly.
    urls: Vec<String>,
    requests: Vec<Request>,
    histogram: Mutex<Histogram<u64>>,
    tally: Mutex<Tally>,
    last_done: Mutex<Option<Instant>>,
}

impl Shared {
    /// Sends request `i` and records its latency from `since` (send time, or scheduled time).
    async fn send(&self, i: usize, since: Instant) {
        let request = &self.requests[i];
        let result = self
            .client
            .post(&self.urls[i % self.urls.len()])
            .headers(request.headers.clone())
            .body(request.body.clone())
            .send()
            .await;
        let outcome = match result {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(body) if status.is_success() => match serde_json::from_slice(&body) {
                        Ok(Answer { id, status }) if status == "accepted" => Ok(Some(id)),
                        Ok(Answer { status, .. }) if status == "duplicate" => Ok(None),
                        _ => Err(format!("{} unexpected body", status.as_u16())),
                    },
                    Ok(_) => Err(status.as_u16().to_string()),
                    Err(e) => Err(transport_kind(&e).to_string()),
                }
            }
            Err(e) => Err(transport_kind(&e).to_string()),
        };
        let done = Instant::now();
        let micros = done.duration_since(since).as_micros() as u64;
        report::record(&mut self.histogram.lock().expect("not poisoned"), micros);
        let mut tally = self.tally.lock().expect("not poisoned");
        match outcome {
            Ok(Some(id)) => {
                tally.accepted += 1;
                tally.accepts.push((id, done));
            }
            Ok(None) => tally.duplicate += 1,
            Err(key) => *tally.errors.entry(key).or_default() += 1,
        }
        drop(tally);
        let mut last = self.last_done.lock().expect("not poisoned");
        *last = Some(last.map_or(done, |l| l.max(done)));
    }
}

fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "transport"
    }
}

/// A client with one pooled keep-alive connection per lane, as a provider's sender would have.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(30))
        .build()
}

/// Sends every request, to `urls` in turn, in `mode` and measures; `Accepts` lists the
/// accepted ones.
pub async fn run(
    client: reqwest::Client,
    urls: Vec<String>,
    requests: Vec<Request>,
    mode: Mode,
) -> (IngestReport, Accepts) {
    let sent = requests.len();
    let shared = Arc::new(Shared {
        client,
        urls,
        tally: Mutex::new(Tally {
            accepts: Vec::with_capacity(sent),
            ..Tally::default()
        }),
        requests,
        histogram: Mutex::new(report::histogram()),
        last_done: Mutex::new(None),
    });
    let start = Instant::now();
    match mode {
        Mode::Closed { concurrency } => {
            let next = Arc::new(AtomicUsize::new(0));
            let lanes: Vec<_> = (0..concurrency.max(1))
                .map(|_| {
                    let (shared, next) = (shared.clone(), next.clone());
                    tokio::spawn(async move {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= shared.requests.len() {
                                break;
                            }
                            shared.send(i, Instant::now()).await;
                        }
                    })
                })
                .collect();
            for lane in lanes {
                lane.await.expect("a lane does not panic");
            }
        }
        Mode::Open {
            rate,
            max_in_flight,
        } => {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
            let mut tasks = Vec::with_capacity(sent);
            for i in 0..sent {
                let scheduled = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(scheduled.into()).await;
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                let shared = shared.clone();
                tasks.push(tokio::spawn(async move {
                    shared.send(i, scheduled).await;
                    drop(permit);
                }));
            }
            for task in tasks {
                task.await.expect("a request task does not panic");
            }
        }
    }
    let end = shared
        .last_done
        .lock()
        .expect("not poisoned")
        .unwrap_or(start);
    let elapsed = end.duration_since(start).as_secs_f64().max(1e-9);
    let latency = Latency::of(&shared.histogram.lock().expect("not poisoned"));
    let tally = std::mem::take(&mut *shared.tally.lock().expect("not poisoned"));
    let report = IngestReport {
        mode,
        sent,
        accepted: tally.accepted,
        duplicate: tally.duplicate,
        errors: tally.errors,
        elapsed_s: elapsed,
        accepted_per_s: tally.accepted as f64 / elapsed,
        latency,
    };
    (report, tally.accepts)
}
