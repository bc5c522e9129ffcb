//! The operators' audit log (`admin_actions`, `GET /v1/admin-actions`, `hookgate admin-actions
//! list`) against real Postgres and Redis: every replay, redelivery, delete, purge and cancel,
//! through the admin API or the CLI, is recorded once with who did it, in the action's own
//! transaction; refused actions are not.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::admin::*;
use common::cli::{Output, hookgate_as};
use common::tokens::{ONCALL, VIEWER};
use common::{Reply, Running, TestEnv, seed};
use hookgate::app::Roles;
use hookgate::store::admin_actions::Action;
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::NamedTempFile;
use uuid::Uuid;

/// A second token that may act, so that a recorded actor is shown to be the acting token's
/// name, not a constant.
const NIGHT_SHIFT: &str = "night-shift-token-0123456789";

/// The seeded sources (`github` and `gitlab`, each with destination `ci`), the viewer and
/// oncall tokens, and the night-shift token.
fn sources() -> String {
    format!(
        r#"{}
        [[admin_tokens]]
        name = "night-shift"
        token = "{NIGHT_SHIFT}"
        scopes = ["read", "replay"]
        "#,
        seeded_sources()
    )
}

/// Receiver and admin API only: no worker changes what the actions leave behind.
async fn gateway(env: &TestEnv) -> Running {
    Running::start_with_roles(env.config(&sources()), Roles::RECEIVER).await
}

/// `METHOD /path [JSON body]` sent to the admin API with `token`.
async fn request(gw: &Running, token: &str, line: &str) -> Reply {
    let mut parts = line.splitn(3, ' ');
    let method = Method::from_bytes(parts.next().unwrap().as_bytes()).unwrap();
    let mut request = gw.admin_request(method, parts.next().unwrap(), token);
    if let Some(body) = parts.next() {
        request = request.json(&serde_json::from_str::<Value>(body).unwrap());
    }
    send(request).await
}

/// `hookgate <args>` (split on spaces) as `$USER` `user` (unset when `None`); must succeed.
async fn cli(config: &NamedTempFile, user: Option<&str>, args: &str) -> Output {
    let args: Vec<&str> = args.split(' ').collect();
    let out = hookgate_as(config, user, &args).await;
    assert!(out.ok, "{args:?}: {out:?}");
    out
}

/// Every recorded action, oldest first, as `{actor, action, target, outcome}`.
async fn recorded(env: &TestEnv) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('actor', actor, 'action', action, 'target', target,
                                   'outcome', outcome)
         FROM admin_actions ORDER BY at, id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap()
}

/// The actions recorded since the last call; `seen` counts those already returned.
async fn since(env: &TestEnv, seen: &mut usize) -> Vec<Value> {
    let all = recorded(env).await;
    let new = all[*seen..].to_vec();
    *seen = all.len();
    new
}

/// Listed actions (API items or `--json` output) as [`recorded`] shows them, oldest first.
fn oldest_first(listed: &Value) -> Vec<Value> {
    let fields = ["actor", "action", "target", "outcome"];
    let shown = |a: &Value| -> Value { fields.iter().map(|&f| (f, a[f].clone())).collect() };
    let mut actions: Vec<Value> = listed.as_array().unwrap().iter().map(shown).collect();
    actions.reverse();
    actions
}

/// What the tables hold, to show that an action happened or not.
async fn state(env: &TestEnv) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
             'actions', (SELECT count(*) FROM admin_actions),
             'open', (SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL),
             'dead_letters', (SELECT count(*) FROM dead_letters),
             'delivered', (SELECT count(*) FROM deliveries WHERE state = 'delivered'),
             'operations', (SELECT count(*) FROM operations),
             'running', (SELECT count(*) FROM operations WHERE state = 'running'),
             'transitions', (SELECT count(*) FROM event_transitions))",
    )
    .fetch_one(&env.db)
    .await
    .unwrap()
}

/// An operation in `state` whose runner is alive elsewhere (its lease is held for an hour),
/// so no runner here takes it.
async fn operation(env: &TestEnv, state: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO operations (id, kind, filter, state, matched, lease_until)
         VALUES ($1, 'redeliver', '{\"source\": \"github\"}', $2, 0,
                 now() + interval '1 hour')",
    )
    .bind(id)
    .bind(state)
    .execute(&env.db)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn each_action_through_the_api_is_recorded_once_with_its_tokens_name_target_and_outcome() {
    let env = TestEnv::new().await;
    let gw = gateway(&env).await;
    let to_replay = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T10:00:00Z").await;
    let to_delete = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T11:00:00Z").await;
    seed::dead_letters(&env.db, "gitlab", "ci", 3).await;
    let events = seed::delivered_events(&env.db, "github", "ci", 4).await;
    let mut seen = 0;

    let line = format!("POST /v1/dead-letters/{to_replay}/replay");
    assert_eq!(request(&gw, ONCALL, &line).await.status, 200);
    let line = format!("DELETE /v1/dead-letters/{to_delete}");
    assert_eq!(request(&gw, NIGHT_SHIFT, &line).await.status, 204);
    let line = format!(
        r#"POST /v1/events/{}/redeliver {{"destinations": ["ci"]}}"#,
        events[0]
    );
    assert_eq!(request(&gw, NIGHT_SHIFT, &line).await.status, 202);
    // Without a body, every destination of the event: `null` in the target.
    let line = format!("POST /v1/events/{}/redeliver", events[1]);
    assert_eq!(request(&gw, ONCALL, &line).await.status, 202);
    assert_eq!(
        since(&env, &mut seen).await,
        [
            json!({"actor": "oncall", "action": "replay",
                   "target": {"dead_letters": [to_replay]},
                   "outcome": {"replayed": 1, "dead_letters": [to_replay], "unroutable": []}}),
            json!({"actor": "night-shift", "action": "delete",
                   "target": {"dead_letters": [to_delete]},
                   "outcome": {"deleted": 1, "dead_letters": [to_delete]}}),
            json!({"actor": "night-shift", "action": "redeliver",
                   "target": {"event": events[0], "destinations": ["ci"]},
                   "outcome": {"redelivered": ["ci"]}}),
            json!({"actor": "oncall", "action": "redeliver",
                   "target": {"event": events[1], "destinations": null},
                   "outcome": {"redelivered": ["ci"]}}),
        ]
    );

    // A bulk operation is recorded when it is created, with its id; its batches add nothing.
    let (replay, started) = start_replay(&gw, json!({"source": "gitlab"})).await;
    let replay_id = uuid(&started.json["id"]);
    let line = r#"POST /v1/events/redeliver {"source": "github", "status": "delivered"}"#;
    let reply = request(&gw, NIGHT_SHIFT, line).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let redeliver_id = uuid(&reply.json["id"]);
    assert_eq!(until_finished(&gw, &replay).await.json["replayed"], 3);
    let redeliver = format!("/v1/operations/{redeliver_id}");
    assert_eq!(until_finished(&gw, &redeliver).await.json["replayed"], 2);
    let held = operation(&env, "running").await;
    let line = format!("DELETE /v1/operations/{held}");
    assert_eq!(request(&gw, ONCALL, &line).await.status, 200);
    assert_eq!(
        since(&env, &mut seen).await,
        [
            json!({"actor": "oncall", "action": "replay",
                   "target": {"filter": {"source": "gitlab"}},
                   "outcome": {"operation": replay_id, "matched": 3}}),
            json!({"actor": "night-shift", "action": "redeliver",
                   "target": {"filter": {"source": "github", "status": "delivered"}},
                   "outcome": {"operation": redeliver_id, "matched": 2}}),
            json!({"actor": "oncall", "action": "cancel",
                   "target": {"operation": held},
                   "outcome": {"kind": "redeliver", "state": "cancelled", "replayed": 0,
                               "failed": 0}}),
        ]
    );

    // The API lists exactly what was recorded, newest first.
    let reply = gw.admin_get("/v1/admin-actions", VIEWER).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["next_cursor"], Value::Null);
    assert_eq!(oldest_first(&reply.json["items"]), recorded(&env).await);
}

#[tokio::test]
async fn refused_actions_and_actions_that_change_nothing_are_not_recorded() {
    let env = TestEnv::new().await;
    let gw = gateway(&env).await;
    let open = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T10:00:00Z").await;
    let replayed = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T11:00:00Z").await;
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = $1")
        .bind(replayed)
        .execute(&env.db)
        .await
        .unwrap();
    let unroutable = seed::dead_letter(&env.db, "github", "gone", "2026-11-20T12:00:00Z").await;
    let delivered = seed::delivered_events(&env.db, "github", "ci", 1).await[0];
    let stranded = seed::delivered_events(&env.db, "github", "gone", 1).await[0];
    let pending = seed::pending_delivery(&env.db, "github", "ci").await;
    let running = operation(&env, "running").await;
    let finished = operation(&env, "succeeded").await;
    let cancelled = operation(&env, "cancelled").await;
    let unknown = Uuid::new_v4();
    let before = state(&env).await;

    // `<status> <token> <request>`: what each answers, by whom.
    let cases = [
        // No valid token, or one that may only read.
        format!("401 stranger POST /v1/dead-letters/{open}/replay"),
        format!("403 viewer POST /v1/dead-letters/{open}/replay"),
        format!("403 viewer DELETE /v1/dead-letters/{open}"),
        format!("403 viewer POST /v1/events/{delivered}/redeliver"),
        r#"403 viewer POST /v1/dead-letters/replay {"all": true}"#.into(),
        r#"403 viewer POST /v1/events/redeliver {"all": true}"#.into(),
        format!("403 viewer DELETE /v1/operations/{running}"),
        // Nothing to act on.
        format!("404 oncall POST /v1/dead-letters/{unknown}/replay"),
        format!("404 oncall DELETE /v1/dead-letters/{unknown}"),
        format!("404 oncall POST /v1/events/{unknown}/redeliver"),
        format!(r#"404 oncall POST /v1/events/{delivered}/redeliver {{"destinations": ["cd"]}}"#),
        format!("404 oncall DELETE /v1/operations/{unknown}"),
        // Not possible now: already replayed, no longer configured, already over.
        format!("409 oncall POST /v1/dead-letters/{replayed}/replay"),
        format!("409 oncall POST /v1/dead-letters/{unroutable}/replay"),
        format!("409 oncall POST /v1/events/{stranded}/redeliver"),
        format!("409 oncall DELETE /v1/operations/{finished}"),
        "400 oncall POST /v1/dead-letters/replay {}".into(),
        r#"400 oncall POST /v1/events/redeliver {"all": true, "source": "github"}"#.into(),
        format!(r#"400 oncall POST /v1/events/{delivered}/redeliver {{"destination": "ci"}}"#),
        // Answered, but nothing changes: the delivery is still pending, the operation was
        // already cancelled.
        format!("202 oncall POST /v1/events/{pending}/redeliver"),
        format!("200 oncall DELETE /v1/operations/{cancelled}"),
    ];
    for case in cases {
        let (status, rest) = case.split_once(' ').unwrap();
        let (who, line) = rest.split_once(' ').unwrap();
        let token = match who {
            "viewer" => VIEWER,
            "oncall" => ONCALL,
            _ => "not-a-token-0123456789",
        };
        let reply = request(&gw, token, line).await;
        assert_eq!(reply.status.to_string(), status, "{line}: {reply:?}");
        assert_eq!(recorded(&env).await, NO_ACTIONS, "{case} was recorded");
    }
    assert_eq!(state(&env).await, before, "nothing changed");
}

const NO_ACTIONS: [Value; 0] = [];

/// The record is written in the action's own transaction: when the database refuses the
/// record, the action does not happen either, through the API or the CLI.
#[tokio::test]
async fn an_action_whose_record_cannot_be_written_does_not_happen() {
    let env = TestEnv::new().await;
    let gw = gateway(&env).await;
    let letter = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T10:00:00Z").await;
    let event = seed::delivered_events(&env.db, "github", "ci", 1).await[0];
    let held = operation(&env, "running").await;
    let before = state(&env).await;
    sqlx::query(
        "ALTER TABLE admin_actions ADD CONSTRAINT refused
         CHECK (actor <> 'night-shift' AND actor NOT LIKE 'cli:%')",
    )
    .execute(&env.db)
    .await
    .unwrap();

    for line in [
        format!("POST /v1/dead-letters/{letter}/replay"),
        format!("DELETE /v1/dead-letters/{letter}"),
        format!("POST /v1/events/{event}/redeliver"),
        r#"POST /v1/dead-letters/replay {"source": "github"}"#.into(),
        r#"POST /v1/events/redeliver {"source": "github"}"#.into(),
        format!("DELETE /v1/operations/{held}"),
    ] {
        let reply = request(&gw, NIGHT_SHIFT, &line).await;
        reply.assert_problem(503, "store-unavailable");
        assert_eq!(state(&env).await, before, "{line} took effect");
    }
    let config = env.config_file(&sources());
    for args in [
        format!("dlq replay {letter}"),
        format!("dlq purge {letter}"),
        "dlq replay --all --source github".into(),
        "dlq purge --all --source github".into(),
        format!("events redeliver {event}"),
    ] {
        let out = hookgate_as(&config, Some("alice"), &args.split(' ').collect::<Vec<_>>()).await;
        assert!(!out.ok, "{args}: {out:?}");
        assert_eq!(state(&env).await, before, "{args} took effect");
    }
    assert_eq!(env.stream_len("github").await, 0);

    // A token whose records are taken acts as usual.
    let line = format!("POST /v1/dead-letters/{letter}/replay");
    assert_eq!(request(&gw, ONCALL, &line).await.status, 200);
    assert_eq!(recorded(&env).await.len(), 1);
}

#[tokio::test]
async fn the_log_is_listed_newest_first_across_pages_by_action_actor_and_time() {
    let env = TestEnv::new().await;
    let gw = gateway(&env).await;
    let base: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
    let actors = ["oncall", "night-shift", "cli:alice"];
    let mut rows = Vec::new();
    for n in 0..30 {
        // Two actions share each time: their ids order them.
        let row = Row {
            id: Uuid::new_v4(),
            at: base + TimeDelta::minutes(n / 2),
            source: actors[n as usize % 3],
            kind: Action::ALL[n as usize % 5].as_str(),
            replayed: false,
        };
        sqlx::query(
            "INSERT INTO admin_actions (id, at, actor, action, target, outcome)
             VALUES ($1, $2, $3, $4, $5, '{\"ok\": true}')",
        )
        .bind(row.id)
        .bind(row.at)
        .bind(row.source)
        .bind(row.kind)
        .bind(json!({"n": n}))
        .execute(&env.db)
        .await
        .unwrap();
        rows.push(row);
    }

    let (ids, pages) = walk(&gw, "/v1/admin-actions?limit=7", 7).await;
    assert_eq!(ids, newest_first(&rows, |_| true));
    assert_eq!(pages, 5);
    let (since, until) = (base + TimeDelta::minutes(3), base + TimeDelta::minutes(9));
    let window = format!("since={}&until={}", rfc3339(since), rfc3339(until));
    type Keep = Box<dyn Fn(&Row) -> bool>;
    let filters: [(&str, Keep); 5] = [
        ("action=purge", Box::new(|r| r.kind == "purge")),
        ("actor=cli:alice", Box::new(|r| r.source == "cli:alice")),
        (
            "action=replay&actor=oncall",
            Box::new(|r| r.kind == "replay" && r.source == "oncall"),
        ),
        (&window, Box::new(move |r| since <= r.at && r.at < until)),
        ("action=pause", Box::new(|_| false)),
    ];
    for (query, keep) in filters {
        let expected = newest_first(&rows, keep);
        let path = format!("/v1/admin-actions?{query}&limit=4");
        assert_eq!(walk(&gw, &path, 4).await.0, expected, "{query}");
    }

    let newest = gw.admin_get("/v1/admin-actions?limit=1", VIEWER).await;
    let item = &newest.json["items"][0];
    // The last two share a time: the one with the greater id is the newest.
    let newest_id = newest_first(&rows, |_| true)[0];
    let (n, last) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.id == newest_id)
        .unwrap();
    assert_eq!(time(&item["at"]), last.at);
    assert_eq!(
        item,
        &json!({"id": last.id, "at": item["at"], "actor": last.source, "action": last.kind,
                "target": {"n": n}, "outcome": {"ok": true}})
    );

    for (query, slug) in [
        ("action=undo", "bad-action"),
        ("limit=0", "bad-limit"),
        ("cursor=nope", "bad-cursor"),
        ("since=yesterday", "bad-time"),
        ("actr=oncall", "bad-query"),
    ] {
        let reply = gw
            .admin_get(&format!("/v1/admin-actions?{query}"), VIEWER)
            .await;
        reply.assert_problem(400, slug);
    }
    let reply = gw.admin_get("/v1/admin-actions?action=undo", VIEWER).await;
    assert_problem(
        &reply,
        400,
        "bad-action",
        "replay, redeliver, delete, purge",
    );
    let stranger = send(gw.admin_http.get(format!("{}/v1/admin-actions", gw.admin))).await;
    stranger.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn cli_actions_are_recorded_as_the_shells_user_and_listed_by_admin_actions_list() {
    let env = TestEnv::new().await;
    let _migrated = gateway(&env).await;
    let config = env.config_file(&sources());
    let first = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T10:00:00Z").await;
    let second = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T11:00:00Z").await;
    seed::dead_letters(&env.db, "gitlab", "ci", 3).await;
    let event = seed::delivered_events(&env.db, "github", "ci", 1).await[0];
    let mut seen = 0;

    cli(&config, Some("alice"), &format!("dlq replay {first}")).await;
    cli(&config, Some("alice"), &format!("dlq purge {second}")).await;
    let out = cli(
        &config,
        Some("bob"),
        "dlq replay --all --source gitlab --json",
    )
    .await;
    let gitlab: Value = serde_json::from_str(&out.stdout).unwrap();
    cli(&config, None, &format!("events redeliver {event}")).await;
    let purge = "dlq purge --all --source github --include-replayed";
    cli(&config, Some("bob"), purge).await;
    assert_eq!(
        since(&env, &mut seen).await,
        [
            json!({"actor": "cli:alice", "action": "replay",
                   "target": {"dead_letters": [first]},
                   "outcome": {"replayed": 1, "dead_letters": [first], "unroutable": []}}),
            json!({"actor": "cli:alice", "action": "purge",
                   "target": {"dead_letters": [second]},
                   "outcome": {"deleted": 1, "dead_letters": [second]}}),
            json!({"actor": "cli:bob", "action": "replay",
                   "target": {"filter": {"source": "gitlab"}},
                   "outcome": {"replayed": 3, "dead_letters": gitlab["ids"], "unroutable": []}}),
            json!({"actor": "cli:unknown", "action": "redeliver",
                   "target": {"event": event, "destinations": null},
                   "outcome": {"redelivered": ["ci"]}}),
            json!({"actor": "cli:bob", "action": "purge",
                   "target": {"filter": {"source": "github", "include_replayed": true}},
                   "outcome": {"deleted": 1, "dead_letters": [first]}}),
        ]
    );

    // Refused commands record nothing.
    let unknown = Uuid::new_v4();
    for command in ["dlq replay", "dlq purge", "events redeliver"] {
        let args = format!("{command} {unknown}");
        let out = hookgate_as(&config, Some("alice"), &args.split(' ').collect::<Vec<_>>()).await;
        assert!(!out.ok, "{args}: {out:?}");
    }
    assert_eq!(since(&env, &mut seen).await, NO_ACTIONS);

    // `admin-actions list`: what GET /v1/admin-actions shows, newest first.
    let out = cli(&config, None, "admin-actions list --json").await;
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(oldest_first(&listed), recorded(&env).await);

    let out = cli(
        &config,
        None,
        "admin-actions list --actor cli:alice --action purge",
    )
    .await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("AT "), "{}", out.stdout);
    assert!(lines[1].contains(" cli:alice  purge "), "{}", out.stdout);
    assert!(lines[1].contains(&second.to_string()), "{}", out.stdout);
    assert_eq!(lines[2], "1 action(s)");
    for (filter, shown) in [
        ("--limit 2", "2 action(s)"),
        ("--since 1h", "5 action(s)"),
        ("--until 1h", "0 action(s)"),
    ] {
        let out = cli(&config, None, &format!("admin-actions list {filter}")).await;
        assert_eq!(out.stdout.lines().last(), Some(shown), "{filter}: {out:?}");
        assert_eq!(out.stderr.contains("more match"), filter == "--limit 2");
    }
    let args = ["admin-actions", "list", "--action", "undo"];
    let out = hookgate_as(&config, None, &args).await;
    assert!(
        !out.ok && out.stderr.contains("replay, redeliver"),
        "{out:?}"
    );
}

/// The migration's CHECK and hookgate's `Action` name the same actions, `pause` and `resume`
/// (reserved for pausing destinations) included.
#[tokio::test]
async fn the_table_takes_exactly_the_actions_hookgate_names() {
    let env = TestEnv::new().await;
    let _migrated = gateway(&env).await;
    let insert = |action: &'static str| {
        sqlx::query(
            "INSERT INTO admin_actions (id, actor, action, target, outcome)
             VALUES ($1, 'oncall', $2, '{}', '{}')",
        )
        .bind(Uuid::now_v7())
        .bind(action)
        .execute(&env.db)
    };
    for action in Action::ALL {
        insert(action.as_str()).await.unwrap();
    }
    let refused = insert("undo").await.unwrap_err().to_string();
    assert!(refused.contains("admin_actions_action_check"), "{refused}");
    let count = env.count("SELECT count(*) FROM admin_actions").await;
    assert_eq!(count, Action::ALL.len() as i64);
}
