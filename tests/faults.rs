//! hookgate as it is deployed: two receivers and two workers, each a process of the real
//! binary, under a steady load of signed webhooks (every event sent more than once), while its
//! parts fail one after another: a worker is killed, then a receiver, then Redis loses
//! everything, then Postgres goes away for a few seconds. Every acknowledged event must end up
//! stored once and delivered, with no more repeated deliveries than at-least-once allows.

mod common;
#[path = "faults/load.rs"]
mod load;

use common::TestEnv;
use common::procs::{Hookgate, PrivateRedis, Role};
use common::proxy::{Proxy, postgres_addr, postgres_via};
use common::sink::{Received, Sink};
use hookgate::queue::GROUP;
use load::Load;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};
use uuid::Uuid;

const SECRET: &str = "s3cret";
/// Distinct events; each is sent two or three times.
const EVENTS: usize = 1_500;
/// Webhooks the test has in flight at once.
const SENDERS: usize = 8;
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
    let mut cluster = Cluster::start(dir.path(), config).await;
    let load = Load::new(
        load::plan(),
        [0, 1].map(|n| cluster.receivers[n].base.clone()),
    );
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(load.clone().send_all()))
        .collect();

    inject_faults(&load, &mut cluster, &mut redis, &postgres).await;
    for sender in senders {
        if let Err(failure) = sender.await.unwrap() {
            panic!("{failure}\n{}", cluster.logs());
        }
    }

    // Stored exactly once: one row per external id, under the id every 200 named.
    let acked = load.acknowledged();
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
        (delivered as usize == EVENTS && total as usize == EVENTS)
            .then_some(())
            .ok_or_else(|| format!("{delivered} of {total} deliveries delivered"))
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

    // A delivery reaches the sink again only when the outcome of an earlier attempt was never
    // recorded: its worker was killed (at most CONCURRENCY deliveries in flight), or Postgres
    // went away before the worker could record it (at most CONCURRENCY in flight in each of
    // the two workers then running). The Redis wipe repeats none: a delivery is claimed in
    // Postgres under a lease, and what Redis forgot is enqueued again only once its lease has
    // run out or its outcome is recorded. Receivers never deliver.
    let repeats = repeated_deliveries(&env, &received, &stored).await;
    let bound = CONCURRENCY + 2 * CONCURRENCY;
    println!(
        "{} webhooks sent for {EVENTS} events ({} tries refused, {} answered 503); \
         {} deliveries at the sink, {repeats} of them repeats (at most {bound} allowed)",
        load.plan.len(),
        load.refused.load(SeqCst),
        load.unavailable.load(SeqCst),
        received.len(),
    );
    assert!(
        repeats <= bound,
        "{repeats} repeated deliveries, more than the {bound} the faults can explain"
    );
}

/// The faults, in order, each once the load has reached its point and only once its effect
/// was seen, so none is a no-op however the timing falls.
async fn inject_faults(
    load: &Load,
    cluster: &mut Cluster,
    redis: &mut PrivateRedis,
    postgres: &Proxy,
) {
    // 1. A worker is killed mid-run (it has delivered already), and a new one starts.
    until_answered(load, FAULTS_AT[0], cluster).await;
    let doomed = &cluster.workers[0];
    settle("the first worker delivers", cluster, async || {
        let metrics = doomed.metrics().await;
        metrics
            .contains("hookgate_deliveries_total{")
            .then_some(())
            .ok_or_else(|| "no delivery yet".into())
    })
    .await;
    cluster.workers[0].kill();
    load.open_gate(1);
    cluster.start_worker("worker-c").await;

    // 2. A receiver is killed; the sender finds it gone and retries at the other one.
    until_answered(load, FAULTS_AT[1], cluster).await;
    let refused = load.refused.load(SeqCst);
    cluster.receivers[1].kill();
    load.open_gate(2);
    settle("the sender finds receiver-b gone", cluster, async || {
        (load.refused.load(SeqCst) > refused)
            .then_some(())
            .ok_or_else(|| "no refused connection yet".into())
    })
    .await;
    cluster.receivers[1].restart().await;

    // 3. Redis dies and comes back empty: streams, group and pending entries are gone, and
    // the webhooks acknowledged meanwhile were never enqueued.
    until_answered(load, FAULTS_AT[2], cluster).await;
    let accepted = load.accepted.load(SeqCst);
    redis.kill();
    load.open_gate(3);
    settle(
        "webhooks are acknowledged without Redis",
        cluster,
        async || {
            let since = load.accepted.load(SeqCst) - accepted;
            (since >= ACKED_WITHOUT_REDIS)
                .then_some(())
                .ok_or_else(|| format!("{since} acknowledged"))
        },
    )
    .await;
    redis.restart().await;

    // 4. Postgres goes away under every process for a few seconds.
    until_answered(load, FAULTS_AT[3], cluster).await;
    let unavailable = load.unavailable.load(SeqCst);
    let cut = Instant::now();
    postgres.cut();
    load.open_gate(4);
    settle("the receivers answer 503", cluster, async || {
        (load.unavailable.load(SeqCst) > unavailable)
            .then_some(())
            .ok_or_else(|| "no 503 yet".into())
    })
    .await;
    tokio::time::sleep(POSTGRES_OUTAGE.saturating_sub(cut.elapsed())).await;
    postgres.restore().await;
}

/// Waits until `percent` of the plan was answered 200.
async fn until_answered(load: &Load, percent: usize, cluster: &Cluster) {
    let target = load.plan.len() * percent / 100;
    let what = format!("{percent}% of the load answered");
    settle(&what, cluster, async || {
        let answered = load.answered.load(SeqCst);
        (answered >= target)
            .then_some(())
            .ok_or_else(|| format!("{answered} of {target} answered"))
    })
    .await;
}

/// Checks that every stored event reached the sink at least once and nothing else did, and
/// that no attempt reached it twice (a repeat is always a new claim, counted in
/// `deliveries.attempts`). Returns how many deliveries were repeats.
async fn repeated_deliveries(
    env: &TestEnv,
    received: &[Received],
    stored: &BTreeMap<String, Uuid>,
) -> usize {
    let claims: HashMap<Uuid, i32> =
        sqlx::query_as::<_, (Uuid, i32)>("SELECT event_id, attempts FROM deliveries")
            .fetch_all(&env.db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let mut attempts_seen = HashSet::new();
    for r in received {
        let id = r.header("webhook-id");
        let event: Uuid = id.strip_suffix("_sink").unwrap().parse().unwrap();
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
    let stored: HashSet<Uuid> = stored.values().copied().collect();
    assert_eq!(
        delivered, stored,
        "every stored event reached the sink, nothing else did"
    );
    received.len() - delivered.len()
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

/// The hookgate processes, each with its own configuration file and log in one directory.
struct Cluster {
    dir: PathBuf,
    config: String,
    receivers: Vec<Hookgate>,
    /// Killed ones stay listed: their logs may explain a failure.
    workers: Vec<Hookgate>,
}

impl Cluster {
    async fn start(dir: &Path, config: String) -> Self {
        let (receiver_a, receiver_b, worker_a, worker_b) = tokio::join!(
            Hookgate::start(dir, "receiver-a", Role::Receive, &config),
            Hookgate::start(dir, "receiver-b", Role::Receive, &config),
            Hookgate::start(dir, "worker-a", Role::Work, &config),
            Hookgate::start(dir, "worker-b", Role::Work, &config),
        );
        Self {
            dir: dir.to_path_buf(),
            config,
            receivers: vec![receiver_a, receiver_b],
            workers: vec![worker_a, worker_b],
        }
    }

    async fn start_worker(&mut self, name: &str) {
        let worker = Hookgate::start(&self.dir, name, Role::Work, &self.config).await;
        self.workers.push(worker);
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
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&self.events);
        pipe.cmd("XPENDING").arg(&self.events).arg(GROUP);
        pipe.cmd("SCARD").arg(&self.queued);
        type Summary = (u64, redis::Value, redis::Value, redis::Value);
        let (len, (pending, ..), queued): (u64, Summary, u64) = pipe
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|e| e.to_string())?;
        match (len, pending, queued) {
            (0, 0, 0) => Ok(()),
            _ => Err(format!("{len} entries, {pending} pending, {queued} queued")),
        }
    }
}
