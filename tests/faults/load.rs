//! The webhooks the fault test sends, as a provider would: signed, each event more than once,
//! retried at the other receiver until one answers 200.

use super::{EVENTS, FAULTS_AT, SECRET};
use crate::common::sign;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Each sender's pause between webhooks: spreads the load over about half a minute.
const PACE: Duration = Duration::from_millis(60);
/// Pause between two tries of one webhook, as a provider retrying a failed request.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long one webhook is retried before the test gives up on it.
const SEND_BUDGET: Duration = Duration::from_secs(60);
/// How far (in percent of the plan) past a fault's point the load goes before it waits for
/// that fault.
const GATE_AFTER: usize = 5;

/// One webhook to send: the event's id at the provider, and the receiver tried first.
pub struct Webhook {
    external_id: String,
    receiver: usize,
}

/// In blocks of 50 events: each is sent once, then again in reverse order (to the other
/// receiver for two in three of them), and every fourth a third time. Copies of an event are
/// thus sent a little apart, sometimes at once, often to both receivers.
pub fn plan() -> Vec<Webhook> {
    let webhook = |n: usize, receiver: usize| Webhook {
        external_id: format!("fault-{n:05}"),
        receiver,
    };
    let other = |n: usize| {
        if n.is_multiple_of(3) {
            n % 2
        } else {
            1 - n % 2
        }
    };
    let mut plan = Vec::new();
    for block in (0..EVENTS).collect::<Vec<_>>().chunks(50) {
        plan.extend(block.iter().map(|&n| webhook(n, n % 2)));
        plan.extend(block.iter().rev().map(|&n| webhook(n, other(n))));
        let third = block.iter().filter(|&&n| n.is_multiple_of(4));
        plan.extend(third.map(|&n| webhook(n, n / 4 % 2)));
    }
    plan
}

/// What one 200 said.
struct Ack {
    external_id: String,
    event: Uuid,
    accepted: bool,
}

/// The plan, sent by any number of senders at once. The load waits a little past each
/// fault's point until that fault is injected, so every fault hits while webhooks are being
/// sent, however fast or slow this machine is.
pub struct Load {
    pub plan: Vec<Webhook>,
    receivers: [String; 2],
    http: reqwest::Client,
    next: AtomicUsize,
    /// Webhooks answered 200.
    pub answered: AtomicUsize,
    /// Webhooks answered 200 `accepted`: stored now, not before.
    pub accepted: AtomicUsize,
    /// Tries that got no answer (the receiver was gone).
    pub refused: AtomicUsize,
    /// Tries answered 503.
    pub unavailable: AtomicUsize,
    /// Webhooks from these positions in the plan wait for the matching fault.
    gates: Vec<usize>,
    injected: watch::Sender<usize>,
    acks: Mutex<Vec<Ack>>,
}

impl Load {
    /// `receivers` are the two receivers' base URLs.
    pub fn new(plan: Vec<Webhook>, receivers: [String; 2]) -> Arc<Self> {
        let gates = FAULTS_AT
            .iter()
            .map(|at| plan.len() * (at + GATE_AFTER) / 100)
            .collect();
        Arc::new(Self {
            receivers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            next: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            unavailable: AtomicUsize::new(0),
            gates,
            injected: watch::Sender::new(0),
            acks: Mutex::default(),
            plan,
        })
    }

    /// One sender: takes the next webhook of the plan until none is left.
    pub async fn send_all(self: Arc<Self>) -> Result<(), String> {
        loop {
            let position = self.next.fetch_add(1, SeqCst);
            let Some(webhook) = self.plan.get(position) else {
                return Ok(());
            };
            let faults_before = self.gates.iter().filter(|&&g| position >= g).count();
            let mut injected = self.injected.subscribe();
            injected.wait_for(|n| *n >= faults_before).await.unwrap();
            let ack = self.send(webhook).await?;
            if ack.accepted {
                self.accepted.fetch_add(1, SeqCst);
            }
            self.acks.lock().unwrap().push(ack);
            self.answered.fetch_add(1, SeqCst);
            tokio::time::sleep(PACE).await;
        }
    }

    /// Sends until a 200, switching receivers after every failed try, within [`SEND_BUDGET`].
    async fn send(&self, webhook: &Webhook) -> Result<Ack, String> {
        let body = format!(r#"{{"id":"{}"}}"#, webhook.external_id);
        let headers = sign::github(SECRET, &webhook.external_id, body.as_bytes());
        let started = Instant::now();
        let mut receiver = webhook.receiver;
        loop {
            let mut request = self
                .http
                .post(format!("{}/webhooks/github", self.receivers[receiver]))
                .body(body.clone());
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            let failure = match request.send().await {
                Ok(response) if response.status() == 200 => {
                    let json: serde_json::Value =
                        response.json().await.map_err(|e| e.to_string())?;
                    return Ok(Ack {
                        external_id: webhook.external_id.clone(),
                        event: json["id"].as_str().unwrap().parse().unwrap(),
                        accepted: json["status"] == "accepted",
                    });
                }
                Ok(response) if response.status() == 503 => {
                    self.unavailable.fetch_add(1, SeqCst);
                    "503".to_string()
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    return Err(format!("{}: {status} {text}", webhook.external_id));
                }
                Err(error) => {
                    self.refused.fetch_add(1, SeqCst);
                    error.to_string()
                }
            };
            if started.elapsed() > SEND_BUDGET {
                return Err(format!(
                    "{} got no 200 within {SEND_BUDGET:?}; last: {failure}",
                    webhook.external_id
                ));
            }
            receiver = 1 - receiver;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The `n`th fault is injected: the load may go past its gate.
    pub fn open_gate(&self, n: usize) {
        self.injected.send_replace(n);
    }

    /// External id -> event id, checking that every 200 for an event named the same event and
    /// at most one said `accepted`.
    pub fn acknowledged(&self) -> BTreeMap<String, Uuid> {
        let mut events = BTreeMap::new();
        let mut accepted = HashSet::new();
        for ack in self.acks.lock().unwrap().iter() {
            let event = *events.entry(ack.external_id.clone()).or_insert(ack.event);
            assert_eq!(
                event, ack.event,
                "{} was acknowledged as two events",
                ack.external_id
            );
            if ack.accepted {
                assert!(
                    accepted.insert(ack.external_id.clone()),
                    "{} was accepted as new twice",
                    ack.external_id
                );
            }
        }
        events
    }
}
