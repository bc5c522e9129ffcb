//! hookgate as it is deployed: two receivers and two workers, each a process of the real
//! binary, under a steady load of signed webhooks (every event sent more than once), while its
//! parts fail one after another: a worker is killed, then a receiver, then Redis loses
//! everything, then Postgres goes away for a few seconds. Every acknowledged event must end up
//! stored once and delivered, with no more duplicate deliveries than at-least-once allows.

mod common;

use common::procs::{Hookgate, PrivateRedis, Role};
use common::proxy::Proxy;
use common::sink::Sink;
use common::{TestEnv, sign};
use sqlx::postgres::PgConnectOptions;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

const SECRET: &str = "s3cret";
/// Distinct events; each is sent two or three times.
const EVENTS: usize = 1_500;
/// Webhooks the test has in flight at once.
const SENDERS: usize = 8;
/// Each sender's pause between webhooks: spreads the load over about half a minute.
const PACE: Duration = Duration::from_millis(60);
/// Pause between two tries of one webhook, as a provider retrying a failed request.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long one webhook is retried before the test gives up on it.
const SEND_BUDGET: Duration = Duration::from_secs(60);
/// Deliveries in flight per worker process.
const CONCURRENCY: usize = 8;
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Postgres stays away, at least.
const POSTGRES_OUTAGE: Duration = Duration::from_secs(3);
/// Webhooks acknowledged while Redis is away before it comes back (they are only in Postgres).
const ACKED_WITHOUT_REDIS: usize = 20;
/// Generous: the machine may be busy; a wait that runs out fails with what it saw.
const SETTLE: Duration = Duration::from_secs(120);
/// Where in the load (webhooks answered, in percent) each fault is injected.
const FAULTS_AT: [usize; 4] = [15, 35, 55, 75];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_webhooks_survive_killed_processes_a_redis_wipe_and_a_postgres_outage() {
    let env = TestEnv::new().await;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start().await;
    let mut redis = PrivateRedis::start(dir.path()).await;
    let postgres = Proxy::start(postgres_addr(&env)).await;
    let config = common::procs::with_settings(
        &env.config_text(&sources(&sink)),
        &[
            ("database_url", postgres_via(&env, &postgres)),
            ("redis_url", redis.url.clone()),
        ],
    );
    let mut cluster = Cluster::start(dir.path(), &config).await;
    let load = Load::new(plan(), [&cluster.receivers[0], &cluster.receivers[1]]);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(load.clone().send_all()))
        .collect();

    // 1. A worker is killed mid-run (it has delivered already), and a new one starts.
    load.until_answered(FAULTS_AT[0], &cluster).await;
    let doomed = &cluster.workers[0];
    settle("the first worker delivers", &cluster, async || {
        let metrics = doomed.metrics().await;
        match metrics.contains("hookgate_deliveries_total{") {
            true => Ok(()),
            false => Err("no delivery yet".into()),
        }
    })
    .await;
    cluster.workers[0].kill();
    load.open_gate(1);
    let replacement = Hookgate::start(dir.path(), "worker-c", Role::Work, &config).await;
    cluster.workers.push(replacement);

    // 2. A receiver is killed; the sender finds it gone and retries at the other one.
    load.until_answered(FAULTS_AT[1], &cluster).await;
    let refused = load.refused.load(SeqCst);
    cluster.receivers[1].kill();
    load.open_gate(2);
    settle(
        "the sender finds receiver-b gone",
        &cluster,
        async || match load.refused.load(SeqCst) > refused {
            true => Ok(()),
            false => Err("no refused connection yet".into()),
        },
    )
    .await;
    cluster.receivers[1].restart().await;

    // 3. Redis dies and comes back empty: streams, group and pending entries are gone, and
    // the webhooks acknowledged meanwhile were never enqueued.
    load.until_answered(FAULTS_AT[2], &cluster).await;
    let accepted = load.accepted.load(SeqCst);
    redis.kill();
    load.open_gate(3);
    settle(
        "webhooks are acknowledged without Redis",
        &cluster,
        async || {
            let now = load.accepted.load(SeqCst) - accepted;
            match now >= ACKED_WITHOUT_REDIS {
                true => Ok(()),
                false => Err(format!("{now} acknowledged")),
            }
        },
    )
    .await;
    redis.restart().await;

    // 4. Postgres goes away under every process for a few seconds.
    load.until_answered(FAULTS_AT[3], &cluster).await;
    let unavailable = load.unavailable.load(SeqCst);
    let cut = Instant::now();
    postgres.cut();
    load.open_gate(4);
    settle("the receivers answer 503", &cluster, async || {
        match load.unavailable.load(SeqCst) > unavailable {
            true => Ok(()),
            false => Err("no 503 yet".into()),
        }
    })
    .await;
    tokio::time::sleep(POSTGRES_OUTAGE.saturating_sub(cut.elapsed())).await;
    postgres.restore().await;

    for sender in senders {
        if let Err(failure) = sender.await.unwrap() {
            panic!("{failure}\n{}", cluster.logs());
        }
    }
    let acked = load.acknowledged();

    // Stored exactly once: one row per external id, under the id every 200 named.
    let stored: BTreeMap<String, Uuid> =
        sqlx::query_as::<_, (String, Uuid)>("SELECT external_id, id FROM events")
            .fetch_all(&env.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(acked.len(), EVENTS, "every event was acknowledged");
    assert_eq!(
        stored, acked,
        "the events table holds what was acknowledged"
    );

    // Delivered: every delivery settles, and the streams drain.
    let streams = StreamState::new(&env, &redis).await;
    settle("every delivery is delivered", &cluster, async || {
        let (delivered, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'delivered'), count(*) FROM deliveries",
        )
        .fetch_one(&env.db)
        .await
        .map_err(|e| e.to_string())?;
        match delivered as usize == EVENTS && total as usize == EVENTS {
            true => Ok(()),
            false => Err(format!("{delivered} of {total} deliveries delivered")),
        }
    })
    .await;
    settle("the streams drain", &cluster, async || {
        streams.empty().await
    })
    .await;

    // Past the visibility timeout any entry a worker still held would have been reclaimed and
    // anything owed enqueued again: still nothing is pending, and nothing more arrives.
    let received_before = sink.received().len();
    tokio::time::sleep(VISIBILITY_TIMEOUT + Duration::from_secs(1)).await;
    streams.empty().await.unwrap();
    assert_eq!(
        env.count("SELECT count(*) FROM events WHERE status <> 'delivered'")
            .await,
        0
    );
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE state <> 'delivered'")
            .await,
        0
    );
    let received = sink.received();
    assert_eq!(
        received.len(),
        received_before,
        "nothing arrives once settled"
    );

    // At least once: every stored event reached the sink, nothing else did, and no attempt
    // reached it twice (a repeat is always a new claim, counted in `deliveries.attempts`).
    let claims: HashMap<Uuid, i32> =
        sqlx::query_as::<_, (Uuid, i32)>("SELECT event_id, attempts FROM deliveries")
            .fetch_all(&env.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let mut attempts_seen = HashSet::new();
    for r in &received {
        let event: Uuid = r
            .header("webhook-id")
            .strip_suffix("_sink")
            .unwrap()
            .parse()
            .unwrap();
        let attempt: i32 = r.header("hookgate-attempt").parse().unwrap();
        assert!(
            attempts_seen.insert((event, attempt)),
            "attempt {attempt} of {event} reached the sink twice"
        );
        assert!(
            attempt <= claims[&event],
            "attempt {attempt} of {event} was never claimed"
        );
    }
    let delivered: HashSet<Uuid> = attempts_seen.iter().map(|(e, _)| *e).collect();
    let stored_ids: HashSet<Uuid> = stored.values().copied().collect();
    assert_eq!(
        delivered, stored_ids,
        "every stored event reached the sink, nothing else did"
    );

    // A delivery reaches the sink again only when the outcome of an earlier attempt was never
    // recorded: its worker was killed (at most CONCURRENCY deliveries in flight), or Postgres
    // went away before the worker could record it (at most CONCURRENCY in flight in each of
    // the two workers then running). The Redis wipe repeats none: a delivery is claimed in
    // Postgres under a lease, and what Redis forgot is enqueued again only once its lease has
    // run out or its outcome is recorded. Receivers never deliver.
    let duplicates = received.len() - delivered.len();
    let bound = CONCURRENCY + 2 * CONCURRENCY;
    println!(
        "{} webhooks sent for {EVENTS} events ({} tries refused, {} answered 503); \
         {} deliveries at the sink, {duplicates} of them repeats (at most {bound} allowed)",
        load.plan.len(),
        load.refused.load(SeqCst),
        load.unavailable.load(SeqCst),
        received.len(),
    );
    assert!(
        duplicates <= bound,
        "{duplicates} repeated deliveries, more than the {bound} the faults can explain"
    );
}

/// Every event delivers to the test's sink. The lease is short so a killed worker's
/// deliveries are taken over within seconds; the sink always answers at once, so a
/// delivery's timeout (below the visibility timeout, as the config requires) never fires.
fn sources(sink: &Sink) -> String {
    format!(
        r#"
        [worker]
        concurrency = {CONCURRENCY}
        visibility_timeout = "{}"
        schedule_interval = "100ms"
        shutdown_deadline = "1s"

        [retry]
        max_attempts = 20
        initial_delay = "100ms"
        multiplier = 2.0
        max_delay = "1s"

        [[sources]]
        name = "github"
        provider = "github"
        secrets = ["{SECRET}"]
          [[sources.destinations]]
          name = "sink"
          url = "{}"
          timeout = "4s"
        "#,
        humantime::format_duration(VISIBILITY_TIMEOUT),
        sink.url
    )
}

fn postgres_addr(env: &TestEnv) -> SocketAddr {
    let options = PgConnectOptions::from_str(&env.database_url).unwrap();
    (options.get_host(), options.get_port())
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}

/// The test schema's Postgres URL, pointed at `proxy` instead of the server.
fn postgres_via(env: &TestEnv, proxy: &Proxy) -> String {
    let options = PgConnectOptions::from_str(&env.database_url).unwrap();
    let database = options.get_database().unwrap_or("postgres");
    let url = format!(
        "postgres://{}@{}/{database}",
        options.get_username(),
        proxy.addr
    );
    common::url_with_schema(&url, &env.schema)
}

/// The hookgate processes, each with its own configuration file and log in one directory.
struct Cluster {
    receivers: Vec<Hookgate>,
    /// Killed ones stay listed: their logs may explain a failure.
    workers: Vec<Hookgate>,
}

impl Cluster {
    async fn start(dir: &Path, config: &str) -> Self {
        let (receiver_a, receiver_b, worker_a, worker_b) = tokio::join!(
            Hookgate::start(dir, "receiver-a", Role::Receive, config),
            Hookgate::start(dir, "receiver-b", Role::Receive, config),
            Hookgate::start(dir, "worker-a", Role::Work, config),
            Hookgate::start(dir, "worker-b", Role::Work, config),
        );
        Self {
            receivers: vec![receiver_a, receiver_b],
            workers: vec![worker_a, worker_b],
        }
    }

    /// The end of every process's log, for a failure message.
    fn logs(&self) -> String {
        let all = self.receivers.iter().chain(&self.workers);
        all.map(|p| format!("--- {} ---\n{}", p.name, p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Waits until `check` passes, failing after [`SETTLE`] with its last complaint and the logs.
async fn settle(what: &str, cluster: &Cluster, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        let complaint = match check().await {
            Ok(()) => return,
            Err(complaint) => complaint,
        };
        assert!(
            started.elapsed() < SETTLE,
            "waited {SETTLE:?} for: {what}; last seen: {complaint}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One webhook to send: the event's id at the provider, and the receiver tried first.
struct Webhook {
    external_id: String,
    receiver: usize,
}

/// In blocks of 50 events: each is sent once, then again in reverse order (to the other
/// receiver for two in three of them), and every fourth a third time. Copies of an event are
/// thus sent a little apart, sometimes at once, often to both receivers.
fn plan() -> Vec<Webhook> {
    let webhook = |n: usize, receiver: usize| Webhook {
        external_id: format!("fault-{n:05}"),
        receiver,
    };
    let mut plan = Vec::new();
    for block in (0..EVENTS).collect::<Vec<_>>().chunks(50) {
        plan.extend(block.iter().map(|&n| webhook(n, n % 2)));
        let other = |n: usize| {
            if n.is_multiple_of(3) {
                n % 2
            } else {
                1 - n % 2
            }
        };
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

/// The webhooks the test sends, as a provider would: signed, retried at the other receiver
/// until one answers 200. The load pauses a little past each fault's point until that fault
/// is injected, so every fault hits while webhooks are being sent, however fast this machine.
struct Load {
    plan: Vec<Webhook>,
    receivers: [String; 2],
    http: reqwest::Client,
    next: AtomicUsize,
    answered: AtomicUsize,
    accepted: AtomicUsize,
    /// Tries that got no answer (the receiver was gone).
    refused: AtomicUsize,
    /// Tries answered 503.
    unavailable: AtomicUsize,
    /// Webhooks from these positions in the plan wait for the matching fault.
    gates: Vec<usize>,
    injected: watch::Sender<usize>,
    acks: Mutex<Vec<Ack>>,
}

impl Load {
    fn new(plan: Vec<Webhook>, receivers: [&Hookgate; 2]) -> Arc<Self> {
        let gates = FAULTS_AT
            .iter()
            .map(|at| plan.len() * (at + 5) / 100)
            .collect();
        Arc::new(Self {
            receivers: receivers.map(|r| r.base.clone()),
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
    async fn send_all(self: Arc<Self>) -> Result<(), String> {
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

    /// Waits until `percent` of the plan was answered 200.
    async fn until_answered(&self, percent: usize, cluster: &Cluster) {
        let target = self.plan.len() * percent / 100;
        settle(
            &format!("{percent}% of the load answered"),
            cluster,
            async || {
                let answered = self.answered.load(SeqCst);
                match answered >= target {
                    true => Ok(()),
                    false => Err(format!("{answered} of {target} answered")),
                }
            },
        )
        .await;
    }

    /// The `n`th fault is injected: the load may go past its gate.
    fn open_gate(&self, n: usize) {
        self.injected.send_replace(n);
    }

    /// External id -> event id, checking that every 200 for an event named the same event and
    /// at most one said `accepted`.
    fn acknowledged(&self) -> BTreeMap<String, Uuid> {
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

/// The source's stream and its bookkeeping in the private Redis.
struct StreamState {
    redis: redis::aio::MultiplexedConnection,
    events: String,
    queued: String,
}

impl StreamState {
    async fn new(env: &TestEnv, redis: &PrivateRedis) -> Self {
        let events = env.stream_key("github");
        Self {
            redis: redis.connection().await.unwrap(),
            queued: events.replace(":events", ":queued"),
            events,
        }
    }

    /// No entry in the stream, none pending in the group, no event marked queued.
    async fn empty(&self) -> Result<(), String> {
        let mut conn = self.redis.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&self.events);
        pipe.cmd("XPENDING").arg(&self.events).arg("hookgate");
        pipe.cmd("SCARD").arg(&self.queued);
        let (len, (pending, ..), queued): (
            u64,
            (u64, redis::Value, redis::Value, redis::Value),
            u64,
        ) = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        match (len, pending, queued) {
            (0, 0, 0) => Ok(()),
            _ => Err(format!("{len} entries, {pending} pending, {queued} queued")),
        }
    }
}
