//! The operators' audit log (`admin_actions`, `GET /v1/admin-actions`, `hookgate admin-actions
//! list`) against real Postgres and Redis: every replay, redelivery, delete, purge and cancel,
//! through the admin API or the CLI, is recorded once with who did it, in the action's own
//! transaction; refused actions are not.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::admin::*;
use common::cli::{hookgate, hookgate_as};
use common::tokens::{ONCALL, VIEWER};
use common::{Running, TestEnv, seed};
use hookgate::app::Roles;
use hookgate::store::admin_actions::Action;
use reqwest::Method;
use serde_json::{Value, json};
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

/// One recorded action as the table holds it: `(actor, action, target, outcome)`.
type Recorded = (String, String, Value, Value);

fn row(actor: &str, action: &str, target: Value, outcome: Value) -> Recorded {
    (actor.to_string(), action.to_string(), target, outcome)
}

/// Every recorded action, oldest first.
async fn recorded(env: &TestEnv) -> Vec<Recorded> {
    sqlx::query_as("SELECT actor, action, target, outcome FROM admin_actions ORDER BY at, id")
        .fetch_all(&env.db)
        .await
        .unwrap()
}

/// The actions recorded since the last call; `seen` counts those already returned.
async fn since(env: &TestEnv, seen: &mut usize) -> Vec<Recorded> {
    let all = recorded(env).await;
    let new = all[*seen..].to_vec();
    *seen = all.len();
    new
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

async fn act(gw: &Running, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
    let mut request = gw.admin_request(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await.status
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

    let path = format!("/v1/dead-letters/{to_replay}/replay");
    assert_eq!(act(&gw, Method::POST, &path, ONCALL, None).await, 200);
    assert_eq!(
        since(&env, &mut seen).await,
        [row(
            "oncall",
            "replay",
            json!({"dead_letters": [to_replay]}),
            json!({"replayed": 1, "dead_letters": [to_replay], "unroutable": []})
        )]
    );

    let path = format!("/v1/dead-letters/{to_delete}");
    assert_eq!(
        act(&gw, Method::DELETE, &path, NIGHT_SHIFT, None).await,
        204
    );
    assert_eq!(
        since(&env, &mut seen).await,
        [row(
            "night-shift",
            "delete",
            json!({"dead_letters": [to_delete]}),
            json!({"deleted": 1, "dead_letters": [to_delete]})
        )]
    );

    let path = format!("/v1/events/{}/redeliver", events[0]);
    let body = json!({"destinations": ["ci"]});
    assert_eq!(
        act(&gw, Method::POST, &path, NIGHT_SHIFT, Some(body)).await,
        202
    );
    // Without a body, every destination of the event: `null` in the target.
    let path = format!("/v1/events/{}/redeliver", events[1]);
    assert_eq!(act(&gw, Method::POST, &path, ONCALL, None).await, 202);
    assert_eq!(
        since(&env, &mut seen).await,
        [
            row(
                "night-shift",
                "redeliver",
                json!({"event": events[0], "destinations": ["ci"]}),
                json!({"redelivered": ["ci"]})
            ),
            row(
                "oncall",
                "redeliver",
                json!({"event": events[1], "destinations": null}),
                json!({"redelivered": ["ci"]})
            )
        ]
    );

    // A bulk operation is recorded when it is created, with its id; its batches add nothing.
    let (replay, started) = start_replay(&gw, json!({"source": "gitlab"})).await;
    let replay_id = uuid(&started.json["id"]);
    let reply = send(
        gw.admin_request(Method::POST, "/v1/events/redeliver", NIGHT_SHIFT)
            .json(&json!({"source": "github", "status": "delivered"})),
    )
    .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let redeliver = reply.header("location").unwrap().to_string();
    let redeliver_id = uuid(&reply.json["id"]);
    assert_eq!(until_finished(&gw, &replay).await.json["replayed"], 3);
    assert_eq!(until_finished(&gw, &redeliver).await.json["replayed"], 2);
    assert_eq!(
        since(&env, &mut seen).await,
        [
            row(
                "oncall",
                "replay",
                json!({"filter": {"source": "gitlab"}}),
                json!({"operation": replay_id, "matched": 3})
            ),
            row(
                "night-shift",
                "redeliver",
                json!({"filter": {"source": "github", "status": "delivered"}}),
                json!({"operation": redeliver_id, "matched": 2})
            )
        ]
    );

    let held = operation(&env, "running").await;
    let path = format!("/v1/operations/{held}");
    assert_eq!(act(&gw, Method::DELETE, &path, ONCALL, None).await, 200);
    assert_eq!(
        since(&env, &mut seen).await,
        [row(
            "oncall",
            "cancel",
            json!({"operation": held}),
            json!({"kind": "redeliver", "state": "cancelled", "replayed": 0, "failed": 0})
        )]
    );

    // The API lists exactly what was recorded, newest first.
    let reply = gw.admin_get("/v1/admin-actions", VIEWER).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["next_cursor"], Value::Null);
    let listed: Vec<Recorded> = reply.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let text = |key: &str| a[key].as_str().unwrap().to_string();
            (
                text("actor"),
                text("action"),
                a["target"].clone(),
                a["outcome"].clone(),
            )
        })
        .collect();
    let mut expected = recorded(&env).await;
    expected.reverse();
    assert_eq!(listed, expected);
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
    let all = || Some(json!({"all": true}));

    const POST: Method = Method::POST;
    const DELETE: Method = Method::DELETE;
    let requests: [(Method, String, &str, Option<Value>, u16); 21] = [
        // No valid token, or one that may only read.
        (
            POST,
            format!("/v1/dead-letters/{open}/replay"),
            "not-a-token-0123456789",
            None,
            401,
        ),
        (
            POST,
            format!("/v1/dead-letters/{open}/replay"),
            VIEWER,
            None,
            403,
        ),
        (
            DELETE,
            format!("/v1/dead-letters/{open}"),
            VIEWER,
            None,
            403,
        ),
        (
            POST,
            format!("/v1/events/{delivered}/redeliver"),
            VIEWER,
            None,
            403,
        ),
        (POST, "/v1/dead-letters/replay".into(), VIEWER, all(), 403),
        (POST, "/v1/events/redeliver".into(), VIEWER, all(), 403),
        (
            DELETE,
            format!("/v1/operations/{running}"),
            VIEWER,
            None,
            403,
        ),
        // Nothing to act on.
        (
            POST,
            format!("/v1/dead-letters/{unknown}/replay"),
            ONCALL,
            None,
            404,
        ),
        (
            DELETE,
            format!("/v1/dead-letters/{unknown}"),
            ONCALL,
            None,
            404,
        ),
        (
            POST,
            format!("/v1/events/{unknown}/redeliver"),
            ONCALL,
            None,
            404,
        ),
        (
            POST,
            format!("/v1/events/{delivered}/redeliver"),
            ONCALL,
            Some(json!({"destinations": ["cd"]})),
            404,
        ),
        (
            DELETE,
            format!("/v1/operations/{unknown}"),
            ONCALL,
            None,
            404,
        ),
        // Not possible now.
        (
            POST,
            format!("/v1/dead-letters/{replayed}/replay"),
            ONCALL,
            None,
            409,
        ),
        (
            POST,
            format!("/v1/dead-letters/{unroutable}/replay"),
            ONCALL,
            None,
            409,
        ),
        (
            POST,
            format!("/v1/events/{stranded}/redeliver"),
            ONCALL,
            None,
            409,
        ),
        (
            DELETE,
            format!("/v1/operations/{finished}"),
            ONCALL,
            None,
            409,
        ),
        // Malformed.
        (
            POST,
            "/v1/dead-letters/replay".into(),
            ONCALL,
            Some(json!({})),
            400,
        ),
        (
            POST,
            "/v1/events/redeliver".into(),
            ONCALL,
            Some(json!({"all": true, "source": "github"})),
            400,
        ),
        (
            POST,
            format!("/v1/events/{delivered}/redeliver"),
            ONCALL,
            Some(json!({"destination": "ci"})),
            400,
        ),
        // Answered, but nothing changes: the delivery is still pending, the operation was
        // already cancelled.
        (
            POST,
            format!("/v1/events/{pending}/redeliver"),
            ONCALL,
            None,
            202,
        ),
        (
            DELETE,
            format!("/v1/operations/{cancelled}"),
            ONCALL,
            None,
            200,
        ),
    ];
    for (method, path, token, body, status) in requests {
        let answered = act(&gw, method.clone(), &path, token, body).await;
        assert_eq!(answered, status, "{method} {path}");
        assert_eq!(recorded(&env).await, [], "{method} {path} was recorded");
    }

    // And indeed nothing changed.
    for (sql, expected) in [
        (
            "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL",
            2,
        ),
        (
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
            2,
        ),
        ("SELECT count(*) FROM operations WHERE state = 'running'", 1),
        ("SELECT count(*) FROM event_transitions", 0),
    ] {
        assert_eq!(env.count(sql).await, expected, "{sql}");
    }
}

/// The record is written in the action's own transaction: when the database refuses the
/// record, the action does not happen either, through the API or the CLI.
#[tokio::test]
async fn an_action_whose_record_cannot_be_written_does_not_happen() {
    let env = TestEnv::new().await;
    let gw = gateway(&env).await;
    let letter = seed::dead_letter(&env.db, "github", "ci", "2026-11-20T10:00:00Z").await;
    let event = seed::delivered_events(&env.db, "github", "ci", 1).await[0];
    let held = operation(&env, "running").await;
    sqlx::query(
        "ALTER TABLE admin_actions ADD CONSTRAINT refused
         CHECK (actor <> 'night-shift' AND actor NOT LIKE 'cli:%')",
    )
    .execute(&env.db)
    .await
    .unwrap();

    const POST: Method = Method::POST;
    const DELETE: Method = Method::DELETE;
    let source = || Some(json!({"source": "github"}));
    for (method, path, body) in [
        (POST, format!("/v1/dead-letters/{letter}/replay"), None),
        (DELETE, format!("/v1/dead-letters/{letter}"), None),
        (POST, format!("/v1/events/{event}/redeliver"), None),
        (POST, "/v1/dead-letters/replay".into(), source()),
        (POST, "/v1/events/redeliver".into(), source()),
        (DELETE, format!("/v1/operations/{held}"), None),
    ] {
        let mut request = gw.admin_request(method.clone(), &path, NIGHT_SHIFT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await.assert_problem(503, "store-unavailable");
    }
    let config = env.config_file(&sources());
    let (letter, event) = (letter.to_string(), event.to_string());
    let (letter, event) = (letter.as_str(), event.as_str());
    for args in [
        ["dlq", "replay", letter].as_slice(),
        &["dlq", "purge", letter],
        &["dlq", "replay", "--all", "--source", "github"],
        &["dlq", "purge", "--all", "--source", "github"],
        &["events", "redeliver", event],
    ] {
        let out = hookgate_as(&config, Some("alice"), args).await;
        assert!(!out.ok, "{args:?}: {out:?}");
    }

    for (sql, expected) in [
        ("SELECT count(*) FROM admin_actions", 0),
        (
            "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL",
            1,
        ),
        ("SELECT count(*) FROM deliveries WHERE state = 'dead'", 1),
        (
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
            1,
        ),
        ("SELECT count(*) FROM operations", 1),
        ("SELECT count(*) FROM operations WHERE state = 'running'", 1),
        ("SELECT count(*) FROM event_transitions", 0),
    ] {
        assert_eq!(env.count(sql).await, expected, "{sql}");
    }
    assert_eq!(env.stream_len("github").await, 0);

    // A token whose records are taken acts as usual.
    let path = format!("/v1/dead-letters/{letter}/replay");
    assert_eq!(act(&gw, POST, &path, ONCALL, None).await, 200);
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
    let window = window.as_str();
    let filters: [(&str, Box<dyn Fn(&Row) -> bool>); 5] = [
        ("action=purge", Box::new(|r| r.kind == "purge")),
        ("actor=cli:alice", Box::new(|r| r.source == "cli:alice")),
        (
            "action=replay&actor=oncall",
            Box::new(|r| r.kind == "replay" && r.source == "oncall"),
        ),
        (window, Box::new(move |r| since <= r.at && r.at < until)),
        ("action=pause", Box::new(|_| false)),
    ];
    for (query, keep) in filters {
        let expected = newest_first(&rows, keep);
        let path = format!("/v1/admin-actions?{query}&limit=4");
        assert_eq!(walk(&gw, &path, 4).await.0, expected, "{query}");
    }

    let newest = gw.admin_get("/v1/admin-actions?limit=1", VIEWER).await;
    let item = &newest.json["items"][0];
    let last = &rows[29];
    assert_eq!(time(&item["at"]), last.at);
    assert_eq!(
        item,
        &json!({
            "id": last.id,
            "at": item["at"],
            "actor": last.source,
            "action": last.kind,
            "target": {"n": 29},
            "outcome": {"ok": true},
        })
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
    let (first_arg, second_arg) = (first.to_string(), second.to_string());
    let mut seen = 0;
    let run = async |user: Option<&str>, args: &[&str]| {
        let out = hookgate_as(&config, user, args).await;
        assert!(out.ok, "{args:?}: {out:?}");
        out
    };

    run(Some("alice"), &["dlq", "replay", &first_arg]).await;
    run(Some("alice"), &["dlq", "purge", &second_arg]).await;
    let out = run(
        Some("bob"),
        &["dlq", "replay", "--all", "--source", "gitlab", "--json"],
    )
    .await;
    let gitlab: Value = serde_json::from_str(&out.stdout).unwrap();
    run(None, &["events", "redeliver", &event.to_string()]).await;
    let purge_all = [
        "dlq",
        "purge",
        "--all",
        "--source",
        "github",
        "--include-replayed",
    ];
    run(Some("bob"), &purge_all).await;
    assert_eq!(
        since(&env, &mut seen).await,
        [
            row(
                "cli:alice",
                "replay",
                json!({"dead_letters": [first]}),
                json!({"replayed": 1, "dead_letters": [first], "unroutable": []})
            ),
            row(
                "cli:alice",
                "purge",
                json!({"dead_letters": [second]}),
                json!({"deleted": 1, "dead_letters": [second]})
            ),
            row(
                "cli:bob",
                "replay",
                json!({"filter": {"source": "gitlab"}}),
                json!({"replayed": 3, "dead_letters": gitlab["ids"], "unroutable": []})
            ),
            row(
                "cli:unknown",
                "redeliver",
                json!({"event": event, "destinations": null}),
                json!({"redelivered": ["ci"]})
            ),
            row(
                "cli:bob",
                "purge",
                json!({"filter": {"source": "github", "include_replayed": true}}),
                json!({"deleted": 1, "dead_letters": [first]})
            ),
        ]
    );

    // Refused commands record nothing.
    let unknown = Uuid::new_v4().to_string();
    let unknown = unknown.as_str();
    for args in [
        ["dlq", "replay", unknown],
        ["dlq", "purge", unknown],
        ["events", "redeliver", unknown],
    ] {
        let out = hookgate_as(&config, Some("alice"), &args).await;
        assert!(!out.ok, "{args:?}: {out:?}");
    }
    assert_eq!(since(&env, &mut seen).await, []);

    // `admin-actions list`: what GET /v1/admin-actions shows, newest first.
    let out = hookgate(&config, &["admin-actions", "list", "--json"]).await;
    assert!(out.ok, "{out:?}");
    let listed: Vec<Recorded> = serde_json::from_str::<Vec<Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|a| {
            let text = |key: &str| a[key].as_str().unwrap().to_string();
            (
                text("actor"),
                text("action"),
                a["target"].clone(),
                a["outcome"].clone(),
            )
        })
        .collect();
    let mut expected = recorded(&env).await;
    expected.reverse();
    assert_eq!(listed, expected);

    let args = [
        "admin-actions",
        "list",
        "--actor",
        "cli:alice",
        "--action",
        "purge",
    ];
    let out = hookgate(&config, &args).await;
    assert!(out.ok, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("AT "), "{}", out.stdout);
    assert!(lines[1].contains(" cli:alice  purge "), "{}", out.stdout);
    assert!(lines[1].contains(&second.to_string()), "{}", out.stdout);
    assert_eq!(lines[2], "1 action(s)");

    for (args, shown) in [
        (["--limit", "2"], "2 action(s)"),
        (["--since", "1h"], "5 action(s)"),
        (["--until", "1h"], "0 action(s)"),
    ] {
        let out = hookgate(&config, &[&["admin-actions", "list"], &args[..]].concat()).await;
        assert!(out.ok, "{out:?}");
        assert_eq!(out.stdout.lines().last(), Some(shown), "{args:?}: {out:?}");
        assert_eq!(out.stderr.contains("more match"), args[0] == "--limit");
    }
    let out = hookgate(&config, &["admin-actions", "list", "--action", "undo"]).await;
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
    assert_eq!(
        env.count("SELECT count(*) FROM admin_actions").await,
        Action::ALL.len() as i64
    );
}
