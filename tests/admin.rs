//! The operators' admin API over real HTTP: a gateway in this process against real Postgres and
//! Redis, with dead letters seeded in the test's schema or produced by a failing sink. Bulk
//! replay operations are in admin_operations.rs.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::admin::*;
use common::proxy::{Proxy, postgres_addr, postgres_via};
use common::sink::{Answer, Sink};
use common::tokens::{ONCALL, VIEWER};
use common::{Reply, Running, TestEnv, seed, sign};
use hookgate::app::{Gateway, Roles};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn requests_without_a_valid_token_are_refused_and_read_tokens_cannot_change_anything() {
    let env = TestEnv::new().await;
    let config = env.config_with_settings("metrics_need_token = true", &seeded_sources());
    let gw = Running::start_with_roles(config, Roles::RECEIVER).await;
    let letter = seed::dead_letter(&env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let event: Uuid = sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE id = $1")
        .bind(letter)
        .fetch_one(&env.db)
        .await
        .unwrap();
    // An operation to try cancelling; it matches nothing.
    let (op, _) = start_replay(&gw, json!({"source": "retired"})).await;
    until_finished(&gw, &op).await;

    let reads = [
        "/v1/events".to_string(),
        format!("/v1/events/{event}"),
        "/v1/dead-letters".to_string(),
        format!("/v1/dead-letters/{letter}"),
        op.clone(),
        format!("{op}/result"),
        "/metrics".to_string(),
    ];
    let writes = [
        (Method::POST, format!("/v1/dead-letters/{letter}/replay")),
        (Method::DELETE, format!("/v1/dead-letters/{letter}")),
        (Method::POST, "/v1/dead-letters/replay".to_string()),
        (Method::DELETE, op.clone()),
    ];
    let every: Vec<(Method, String)> = reads
        .iter()
        .map(|path| (Method::GET, path.clone()))
        .chain(writes.iter().cloned())
        .collect();
    let base64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("oncall:{ONCALL}"),
    );
    // Each refusal says what was wrong with what was sent.
    const NO_HEADER: &str = "send the token as \"Authorization: Bearer <token>\"";
    const NOT_BEARER: &str = "must be \"Bearer <token>\"";
    const UNKNOWN: &str = "the token is not valid";
    let refused = [
        (None, NO_HEADER),
        (Some("Bearer wrong-token-0123456789".to_string()), UNKNOWN),
        (
            Some(format!("Bearer {}", &ONCALL[..ONCALL.len() - 1])),
            UNKNOWN,
        ),
        (Some(format!("Bearer {ONCALL}x")), UNKNOWN),
        (Some(ONCALL.to_string()), NOT_BEARER),
        (Some(format!("Token {ONCALL}")), NOT_BEARER),
        (Some(format!("Basic {base64}")), NOT_BEARER),
        (Some("Bearer".to_string()), NOT_BEARER),
        (Some("Bearer ".to_string()), NOT_BEARER),
    ];
    for (method, path) in &every {
        for (authorization, why) in &refused {
            let mut request = gw
                .admin_http
                .request(method.clone(), format!("{}{path}", gw.admin));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            if *method == Method::POST {
                request = request.json(&json!({"all": true}));
            }
            let reply = send(request).await;
            assert_problem(&reply, 401, "unauthorized", why);
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer realm=\"hookgate-admin\""),
                "{method} {path} with {authorization:?}"
            );
        }
    }
    // Authentication comes before validation: a stranger learns nothing from a bad query.
    let reply = send(gw.admin_http.get(format!("{}/v1/events?limit=0", gw.admin))).await;
    assert_problem(&reply, 401, "unauthorized", NO_HEADER);

    for path in &reads {
        let reply = gw.admin_get(path, VIEWER).await;
        assert!(
            reply.status == 200 || (path == &op && reply.status == 303),
            "{path}: {reply:?}"
        );
    }
    for (method, path) in &writes {
        let mut request = gw.admin_request(method.clone(), path, VIEWER);
        if *method == Method::POST {
            request = request.json(&json!({"all": true}));
        }
        let reply = send(request).await;
        assert_problem(&reply, 403, "forbidden", "replay");
    }
    // The refused requests changed nothing.
    let open: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT replayed_at FROM dead_letters WHERE id = $1")
            .bind(letter)
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(
        open, None,
        "the dead letter is neither replayed nor deleted"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE state = 'dead'")
            .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM operations").await, 1);
    let result = gw.admin_get(&format!("{op}/result"), VIEWER).await;
    assert_eq!(
        result.json["state"], "succeeded",
        "not cancelled: {result:?}"
    );

    // The public listener serves webhooks only, whatever the token.
    for path in [
        "/v1/events",
        "/v1/dead-letters",
        "/v1/openapi.json",
        "/metrics",
    ] {
        let reply = send(
            gw.http
                .get(format!("{}{path}", gw.base))
                .bearer_auth(ONCALL),
        )
        .await;
        reply.assert_problem(404, "not-found");
    }
}

/// The API's description is public, like the listing of a shop's doors: it holds no data,
/// and a client (or the 404 fallback's "see /v1/openapi.json") can read it before it has a
/// token. Everything else under /v1 needs one.
#[tokio::test]
async fn the_api_description_is_the_one_v1_route_served_without_a_token() {
    let env = TestEnv::new().await;
    let gw = Running::start_with_roles(env.config(&seeded_sources()), Roles::RECEIVER).await;
    let described = send(gw.admin_http.get(format!("{}/v1/openapi.json", gw.admin))).await;
    assert_eq!(described.status, 200, "{described:?}");
    assert_eq!(described.json["openapi"], "3.1.0");
    let refused = send(gw.admin_http.get(format!("{}/v1/events", gw.admin))).await;
    refused.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn events_are_listed_newest_first_by_source_status_and_time_across_pages() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    const STATUSES: [&str; 3] = ["pending", "delivered", "dead_lettered"];
    let base: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut rows = Vec::new();
    let mut add =
        async |source: &'static str, i: usize, at: DateTime<Utc>, status: &'static str| {
            let id = seed::event(
                &env.db,
                source,
                &format!("{source}-{i}"),
                &rfc3339(at),
                status,
            )
            .await;
            rows.push(Row {
                id,
                at,
                source,
                kind: status,
                replayed: false,
            });
        };
    // Two events a minute: equal times are ordered by id.
    for i in 0..23 {
        let at = base + TimeDelta::minutes(i as i64 / 2);
        add("github", i, at, STATUSES[i % 3]).await;
    }
    for i in 0..4 {
        let at = base + TimeDelta::minutes(3 * i as i64) + TimeDelta::seconds(30);
        add("stripe", i, at, STATUSES[(i + 1) % 3]).await;
    }
    for i in 0..30 {
        let at = base - TimeDelta::days(1) + TimeDelta::minutes(i as i64);
        add("gitlab", i, at, "pending").await;
    }
    let fresh_at = Utc::now() - TimeDelta::minutes(30);
    add("github", 99, fresh_at, "pending").await;
    let fresh = rows.last().unwrap().id;

    // Without a limit: the newest 50, and a cursor to the rest.
    let first = gw.admin_get("/v1/events", VIEWER).await;
    assert_eq!(first.status, 200, "{first:?}");
    let all = newest_first(&rows, |_| true);
    assert_eq!(item_ids(&first), all[..50]);
    assert!(first.json["next_cursor"].is_string(), "{first:?}");
    let item = first.json["items"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "event_type",
            "external_id",
            "id",
            "received_at",
            "source",
            "status"
        ]
    );
    assert_eq!(item["id"], fresh.to_string());
    assert_eq!(item["source"], "github");
    assert_eq!(item["external_id"], "github-99");
    assert_eq!(item["status"], "pending");
    let shown = time(&item["received_at"]);
    assert!(
        (shown - fresh_at).abs() < TimeDelta::milliseconds(1),
        "{shown}"
    );
    // The newest of the day-old events comes right after the 28 others.
    let gitlab_item = &first.json["items"][28];
    assert_eq!(gitlab_item["source"], "gitlab");
    assert_eq!(
        time(&gitlab_item["received_at"]),
        base - TimeDelta::days(1) + TimeDelta::minutes(29)
    );

    // Pages of 5 cover everything once, in order.
    assert_eq!(walk(&gw, "/v1/events?limit=5", 5).await, (all.clone(), 12));
    assert_eq!(
        walk(&gw, "/v1/events?limit=500", 500).await,
        (all.clone(), 1)
    );
    // A page exactly as long as what is left ends the listing.
    let stripe = newest_first(&rows, |r| r.source == "stripe");
    assert_eq!(
        walk(&gw, "/v1/events?source=stripe&limit=4", 4).await,
        (stripe.clone(), 1)
    );
    assert_eq!(
        walk(&gw, "/v1/events?source=stripe&limit=3", 3).await,
        (stripe, 2)
    );
    assert_eq!(
        walk(&gw, "/v1/events?source=github&limit=5", 5).await.0,
        newest_first(&rows, |r| r.source == "github")
    );
    for status in STATUSES {
        assert_eq!(
            walk(&gw, &format!("/v1/events?status={status}&limit=4"), 4)
                .await
                .0,
            newest_first(&rows, |r| r.kind == status),
            "{status}"
        );
    }
    assert_eq!(listed(&gw, "/v1/events?source=bitbucket").await, NONE);

    // since is inclusive, until exclusive; both take RFC 3339 times or ages.
    let since = base + TimeDelta::minutes(2);
    let until = base + TimeDelta::minutes(8);
    let window = |r: &Row| r.at >= since && r.at < until;
    let expected = newest_first(&rows, window);
    assert_eq!(expected.len(), 12 + 2);
    let path = format!(
        "/v1/events?since={}&until={}&limit=5",
        rfc3339(since),
        rfc3339(until)
    );
    assert_eq!(walk(&gw, &path, 5).await.0, expected);
    let path = format!("/v1/events?since={}&limit=500", rfc3339(until));
    assert_eq!(
        listed(&gw, &path).await,
        newest_first(&rows, |r| r.at >= until)
    );
    assert_eq!(listed(&gw, "/v1/events?since=1h").await, [fresh]);
    assert_eq!(
        walk(&gw, "/v1/events?until=1h&source=github&limit=10", 10)
            .await
            .0,
        newest_first(&rows, |r| r.source == "github" && r.id != fresh)
    );
    // Every filter at once, over pages of 2.
    let path = format!(
        "/v1/events?source=github&status=delivered&since={}&until={}&limit=2",
        rfc3339(since),
        rfc3339(until)
    );
    let expected = newest_first(&rows, |r| {
        window(r) && r.source == "github" && r.kind == "delivered"
    });
    assert!(expected.len() >= 3, "spans pages: {expected:?}");
    assert_eq!(walk(&gw, &path, 2).await.0, expected);
}

/// Keyset pages: webhooks arriving between pages push nothing that existed at the first page
/// off a later page or onto it twice.
#[tokio::test]
async fn events_listed_page_by_page_while_new_ones_arrive_show_each_earlier_one_once() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    for n in 0..30 {
        receive(
            &gw,
            &format!("before-{n}"),
            format!("{{\"n\":{n}}}").as_bytes(),
        )
        .await;
    }
    // Equal times, which only the id orders.
    for n in 0..10 {
        seed::event(
            &env.db,
            "github",
            &format!("tied-{n}"),
            "2026-01-01T00:00:00Z",
            "pending",
        )
        .await;
    }
    let existing: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM events")
        .fetch_all(&env.db)
        .await
        .unwrap()
        .into_iter()
        .collect();

    let mut listed = Vec::new();
    let mut arrived = 0;
    let mut path = "/v1/events?limit=7".to_string();
    loop {
        let page = gw.admin_get(&path, VIEWER).await;
        assert_eq!(page.status, 200, "{page:?}");
        listed.extend(item_ids(&page));
        for _ in 0..3 {
            receive(&gw, &format!("during-{arrived}"), b"{}").await;
            arrived += 1;
        }
        match page.json["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/events?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let unique: HashSet<Uuid> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "an event was listed twice");
    let gaps: Vec<&Uuid> = existing.difference(&unique).collect();
    assert!(gaps.is_empty(), "never listed: {gaps:?}");
    assert!(arrived >= 3 * 6, "{arrived} arrived while paging");
}

#[tokio::test]
async fn dead_letters_are_listed_newest_first_by_source_destination_and_time_across_pages() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let base: DateTime<Utc> = "2026-02-01T00:00:00Z".parse().unwrap();
    let mut rows = Vec::new();
    let mut add = async |source: &'static str, destination: &'static str, at: DateTime<Utc>| {
        let id = seed::dead_letter(&env.db, source, destination, &rfc3339(at)).await;
        rows.push(Row {
            id,
            at,
            source,
            kind: destination,
            replayed: false,
        });
        id
    };
    // Two a minute: equal times are ordered by id.
    for i in 0..8 {
        add("github", "ci", base + TimeDelta::minutes(i / 2)).await;
    }
    for i in 0..3 {
        add(
            "github",
            "audit",
            base + TimeDelta::minutes(i) + TimeDelta::seconds(15),
        )
        .await;
    }
    for i in 0..3 {
        add(
            "gitlab",
            "ci",
            base + TimeDelta::minutes(2 * i) + TimeDelta::seconds(45),
        )
        .await;
    }
    let replayed = [
        add("github", "ci", base + TimeDelta::minutes(1)).await,
        add("github", "ci", base + TimeDelta::minutes(10)).await,
    ];
    let fresh = add("gitlab", "audit", Utc::now() - TimeDelta::minutes(30)).await;
    sqlx::query("UPDATE dead_letters SET replayed_at = now() WHERE id = ANY($1)")
        .bind(&replayed[..])
        .execute(&env.db)
        .await
        .unwrap();
    for row in &mut rows {
        row.replayed = replayed.contains(&row.id);
    }
    let open = |r: &Row| !r.replayed;
    let all_open = newest_first(&rows, open);
    assert_eq!(all_open.len(), 15);

    // Replayed dead letters only with include_replayed=true.
    let first = gw.admin_get("/v1/dead-letters", VIEWER).await;
    assert_eq!(item_ids(&first), all_open);
    assert_eq!(first.json["next_cursor"], Value::Null);
    assert_eq!(
        listed(&gw, "/v1/dead-letters?include_replayed=false").await,
        all_open
    );
    assert_eq!(
        listed(&gw, "/v1/dead-letters?include_replayed=true").await,
        newest_first(&rows, |_| true)
    );

    // What a line shows.
    let line = first.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["source"] == "github" && item["destination"] == "audit")
        .unwrap();
    let id = uuid(&line["id"]);
    let event: Uuid = sqlx::query_scalar("SELECT event_id FROM dead_letters WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    let created = rows.iter().find(|r| r.id == id).unwrap().at;
    assert_eq!(uuid(&line["event_id"]), event);
    assert_eq!(line["attempts"], SEEDED_ATTEMPTS);
    assert_eq!(line["failure_kind"], "rejected");
    assert_eq!(line["last_status"], 500);
    assert_eq!(line["last_error"], "HTTP 500");
    assert_eq!(time(&line["created_at"]), created);
    assert_eq!(time(&line["last_attempt_at"]), created);
    assert_eq!(
        time(&line["first_attempt_at"]),
        created - TimeDelta::hours(1)
    );
    assert_eq!(line["replayed_at"], Value::Null);
    let with_replayed = gw
        .admin_get("/v1/dead-letters?include_replayed=true", VIEWER)
        .await;
    let shown = with_replayed.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"] == replayed[0].to_string())
        .unwrap();
    assert!(shown["replayed_at"].is_string(), "{shown}");

    let by = async |query: &str, keep: &dyn Fn(&Row) -> bool| {
        assert_eq!(
            listed(&gw, &format!("/v1/dead-letters?{query}")).await,
            newest_first(&rows, |r| open(r) && keep(r)),
            "{query}"
        );
    };
    by("source=github", &|r| r.source == "github").await;
    by("destination=ci", &|r| r.kind == "ci").await;
    by("source=github&destination=audit", &|r| {
        r.source == "github" && r.kind == "audit"
    })
    .await;
    by("source=bitbucket", &|_| false).await;

    // since is inclusive, until exclusive, both on created_at.
    let since = base + TimeDelta::minutes(1);
    let until = base + TimeDelta::minutes(3);
    let path = format!(
        "/v1/dead-letters?since={}&until={}&include_replayed=true&limit=3",
        rfc3339(since),
        rfc3339(until)
    );
    let expected = newest_first(&rows, |r| r.at >= since && r.at < until);
    assert_eq!(expected.len(), 4 + 2 + 1 + 1);
    assert_eq!(walk(&gw, &path, 3).await.0, expected);
    assert_eq!(listed(&gw, "/v1/dead-letters?since=1h").await, [fresh]);
    assert_eq!(
        listed(&gw, "/v1/dead-letters?until=1h&source=gitlab").await,
        newest_first(&rows, |r| r.source == "gitlab" && r.id != fresh)
    );

    // Pages cover everything once, in order.
    assert_eq!(
        walk(&gw, "/v1/dead-letters?limit=4", 4).await,
        (all_open.clone(), 4)
    );
    assert_eq!(
        walk(&gw, "/v1/dead-letters?limit=5", 5).await,
        (all_open, 3)
    );
    assert_eq!(
        walk(&gw, "/v1/dead-letters?include_replayed=true&limit=4", 4).await,
        (newest_first(&rows, |_| true), 5)
    );
    assert_eq!(
        walk(
            &gw,
            "/v1/dead-letters?source=github&destination=ci&include_replayed=true&limit=3",
            3
        )
        .await
        .0,
        newest_first(&rows, |r| r.source == "github" && r.kind == "ci")
    );
}

#[tokio::test]
async fn an_events_status_shows_pending_retrying_delivered_and_dead_with_its_dead_letter() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.script(&[Answer::status(500)]);
    let config = delivering_to(&sink, 2, "1500ms");
    // The receiver alone first: the event waits for its first attempt.
    let gw = Running::start_with_roles(env.config(&config), Roles::RECEIVER).await;
    let id = receive(&gw, "d-life", br#"{"n":1}"#).await;
    let path = format!("/v1/events/{id}");

    let pending = gw.admin_get(&path, VIEWER).await;
    assert_eq!(pending.status, 200, "{pending:?}");
    assert_eq!(pending.json["id"], id.to_string());
    assert_eq!(pending.json["source"], "github");
    assert_eq!(pending.json["external_id"], "d-life");
    assert_eq!(pending.json["status"], "pending");
    assert!(pending.json["received_at"].is_string());
    assert_eq!(pending.json["dead_letters"], json!([]));
    let delivery = &pending.json["deliveries"][0];
    assert_eq!(pending.json["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(delivery["destination"], "billing");
    assert_eq!(delivery["state"], "pending");
    assert_eq!(delivery["attempts"], 0);
    assert_eq!(delivery["max_attempts"], 2);
    assert!(delivery["next_attempt_at"].is_string(), "{delivery}");
    for never in [
        "last_attempt_at",
        "last_status",
        "last_error",
        "delivered_at",
    ] {
        assert_eq!(delivery[never], Value::Null, "{never}: {delivery}");
    }
    // Due now: poll again in a second.
    assert_eq!(pending.retry_after.as_deref(), Some("1"), "{pending:?}");

    let worker = Gateway::start(env.config(&config), Roles::WORKER)
        .await
        .unwrap();
    let retrying = poll(&gw, &path, |r| {
        r.json["deliveries"][0]["last_status"] == 500
    })
    .await;
    assert_eq!(retrying.json["status"], "pending");
    let delivery = &retrying.json["deliveries"][0];
    assert_eq!(delivery["state"], "retrying", "{delivery}");
    assert_eq!(delivery["attempts"], 1);
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 500"),
        "{delivery}"
    );
    assert_eq!(delivery["delivered_at"], Value::Null);
    let waits = time(&delivery["next_attempt_at"]) - time(&delivery["last_attempt_at"]);
    assert!(waits >= TimeDelta::milliseconds(1400), "{delivery}");
    let retry_after: u64 = retrying.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retrying:?}");

    let delivered = poll(&gw, &path, |r| r.json["status"] == "delivered").await;
    assert_eq!(delivered.retry_after, None, "nothing more to wait for");
    let delivery = &delivered.json["deliveries"][0];
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_status"], 200);
    assert_eq!(delivery["last_error"], Value::Null);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    assert!(delivery["delivered_at"].is_string(), "{delivery}");
    assert_eq!(delivered.json["dead_letters"], json!([]));

    sink.set_default(Answer::status(500));
    let doomed = receive(&gw, "d-doomed", br#"{"n":2}"#).await;
    let path = format!("/v1/events/{doomed}");
    let dead = poll(&gw, &path, |r| r.json["status"] == "dead_lettered").await;
    assert_eq!(dead.retry_after, None, "nothing more to wait for");
    let delivery = &dead.json["deliveries"][0];
    assert_eq!(delivery["state"], "dead");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_status"], 500);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    let links = dead.json["dead_letters"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{dead:?}");
    let letter = uuid(&links[0]["id"]);
    assert_eq!(links[0]["href"], format!("/v1/dead-letters/{letter}"));
    let shown = gw
        .admin_get(links[0]["href"].as_str().unwrap(), VIEWER)
        .await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json["id"], letter.to_string());
    assert_eq!(shown.json["event_id"], doomed.to_string());
    assert_eq!(shown.json["event"], path);
    assert_eq!(shown.json["destination"], "billing");

    assert_eq!(
        listed(&gw, "/v1/events?status=delivered").await,
        [id],
        "the listing agrees"
    );
    assert_eq!(
        listed(&gw, "/v1/events?status=dead_lettered").await,
        [doomed]
    );
    worker.shutdown_token().cancel();
    worker.wait().await.unwrap();
}

#[tokio::test]
async fn a_dead_letter_shows_what_was_received_and_is_replayed_once_then_deleted() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer::status(500));
    let gw = env.start(&delivering_to(&sink, 2, "100ms")).await;
    let body = br#"{"action":"opened","number":7}"#;
    let event = receive(&gw, "d-single", body).await;
    let listing = poll(&gw, "/v1/dead-letters", |r| {
        r.json["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let id = item_ids(&listing)[0];
    let path = format!("/v1/dead-letters/{id}");

    let shown = gw.admin_get(&path, VIEWER).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    let letter = &shown.json;
    assert_eq!(letter["id"], id.to_string());
    assert_eq!(letter["event_id"], event.to_string());
    assert_eq!(letter["event"], format!("/v1/events/{event}"));
    assert_eq!(letter["source"], "github");
    assert_eq!(letter["destination"], "billing");
    assert_eq!(letter["external_id"], "d-single");
    assert_eq!(letter["event_status"], "dead_lettered");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["failure_kind"], "rejected");
    assert_eq!(letter["last_status"], 500);
    assert_eq!(letter["replayed_at"], Value::Null);
    assert_eq!(letter["payload"], std::str::from_utf8(body).unwrap());
    assert!(letter.get("payload_base64").is_none(), "{letter}");
    let headers = letter["headers"].as_array().unwrap();
    for (name, value) in [
        ("x-github-delivery", "d-single"),
        ("x-github-event", "push"),
        ("content-type", "application/json"),
    ] {
        assert!(
            headers.contains(&json!([name, value])),
            "{name}: {value} missing from {headers:?}"
        );
    }
    let log = letter["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    for (n, attempt) in log.iter().enumerate() {
        assert_eq!(attempt["attempt"], n + 1);
        assert_eq!(attempt["status_code"], 500);
        assert!(
            attempt["error"].as_str().unwrap().starts_with("HTTP 500"),
            "{attempt}"
        );
        assert!(attempt["duration_ms"].as_i64().unwrap() >= 0);
    }
    assert!(time(&log[1]["at"]) >= time(&log[0]["at"]) + TimeDelta::milliseconds(100));

    // The destination heals, slowly: the replayed delivery is visibly pending for a second.
    sink.set_default(Answer {
        status: 200,
        retry_after: None,
        delay: Duration::from_secs(1),
    });
    let replay = format!("{path}/replay");
    let replayed = send(gw.admin_request(Method::POST, &replay, ONCALL)).await;
    assert_eq!(replayed.status, 200, "{replayed:?}");
    assert_eq!(
        replayed.json,
        json!({
            "id": id.to_string(),
            "event_id": event.to_string(),
            "enqueued": true,
            "event": format!("/v1/events/{event}"),
        })
    );
    let status = gw.admin_get(&format!("/v1/events/{event}"), VIEWER).await;
    assert_eq!(status.json["status"], "pending", "{status:?}");
    assert_eq!(status.json["deliveries"][0]["state"], "retrying");
    assert_eq!(status.json["deliveries"][0]["max_attempts"], 2 + 2);
    assert!(status.retry_after.is_some(), "{status:?}");

    let received = sink.wait_for(3, WAIT).await;
    assert_eq!(&received[2].body[..], body);
    assert_eq!(received[2].header("hookgate-attempt"), "3");
    poll(&gw, &format!("/v1/events/{event}"), |r| {
        r.json["status"] == "delivered"
    })
    .await;
    let shown = gw.admin_get(&path, VIEWER).await;
    assert!(shown.json["replayed_at"].is_string(), "{shown:?}");
    let log = shown.json["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3, "the attempts before the replay stay: {log:?}");
    assert_eq!(log[2]["attempt"], 3);
    assert_eq!(log[2]["status_code"], 200);

    let again = send(gw.admin_request(Method::POST, &replay, ONCALL)).await;
    assert_problem(&again, 409, "conflict", "already replayed");
    assert_eq!(sink.received().len(), 3, "not delivered again");

    let deleted = gw
        .admin_request(Method::DELETE, &path, ONCALL)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.unwrap().is_empty());
    assert_problem(
        &gw.admin_get(&path, VIEWER).await,
        404,
        "not-found",
        &id.to_string(),
    );
    let again = send(gw.admin_request(Method::DELETE, &path, ONCALL)).await;
    assert_problem(&again, 404, "not-found", &id.to_string());
    let again = send(gw.admin_request(Method::POST, &replay, ONCALL)).await;
    assert_problem(&again, 404, "not-found", &id.to_string());
    assert_eq!(
        listed(&gw, "/v1/dead-letters?include_replayed=true").await,
        NONE
    );
    // The event and its delivery stay.
    let status = gw.admin_get(&format!("/v1/events/{event}"), VIEWER).await;
    assert_eq!(status.json["status"], "delivered");
    assert_eq!(status.json["dead_letters"], json!([]));
}

/// Postgres goes away under a process that runs the admin API alone: reads and writes answer
/// `503 store-unavailable` with `Retry-After`, and the API answers again once it is back.
#[tokio::test]
async fn the_admin_api_answers_503_while_postgres_is_away() {
    let env = TestEnv::new().await;
    let proxy = Proxy::start(postgres_addr(&env)).await;
    let database_url = postgres_via(&env, &proxy);
    let config = env.config_with(&database_url, &common::redis_url(), &seeded_sources());
    let admin_only = Roles {
        receiver: false,
        worker: false,
    };
    let gateway = Gateway::start(config, admin_only).await.unwrap();
    assert_eq!(gateway.public_addr, None);
    let letter = seed::dead_letter(&env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let http = reqwest::Client::new();
    let call = async |method: Method, path: &str| {
        let url = format!("http://{}{path}", gateway.admin_addr);
        send(http.request(method, url).bearer_auth(ONCALL)).await
    };
    let shown = format!("/v1/dead-letters/{letter}");
    assert_eq!(call(Method::GET, &shown).await.status, 200);

    proxy.cut();
    for (method, path) in [
        (Method::GET, "/v1/events".to_string()),
        (Method::GET, "/v1/dead-letters".to_string()),
        (Method::GET, shown.clone()),
        (Method::POST, format!("{shown}/replay")),
    ] {
        let reply = call(method.clone(), &path).await;
        assert_problem(&reply, 503, "store-unavailable", "try again");
        assert_eq!(reply.retry_after.as_deref(), Some("5"), "{method} {path}");
    }

    proxy.restore().await;
    let back = call(Method::GET, &shown).await;
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(
        back.json["replayed_at"],
        Value::Null,
        "the refused replay changed nothing"
    );
    gateway.shutdown_token().cancel();
    gateway.wait().await.unwrap();
}

/// Credentials a client or proxy adds are stored as `[redacted]`, and the admin API shows
/// them so; the other headers come back as sent.
#[tokio::test]
async fn stored_headers_shown_by_the_admin_api_have_credentials_redacted() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer::status(500));
    let gw = env.start(&delivering_to(&sink, 1, "100ms")).await;
    let body = br#"{"action":"opened"}"#;
    let mut headers = sign::github(SECRET, "d-credentials", body);
    for (name, value) in [
        ("Authorization", "Bearer authorization-secret"),
        ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
        ("Cookie", "session=cookie-secret"),
        ("X-Team", "builds"),
    ] {
        headers.push((name.to_string(), value.to_string()));
    }
    let reply = gw.post("github", &headers, body).await;
    assert_eq!(reply.json["status"], "accepted", "{reply:?}");
    let listing = poll(&gw, "/v1/dead-letters", |r| {
        r.json["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    let letter = item_ids(&listing)[0];
    let shown = gw
        .admin_get(&format!("/v1/dead-letters/{letter}"), VIEWER)
        .await;
    assert_eq!(shown.status, 200, "{shown:?}");
    let stored = shown.json["headers"].as_array().unwrap();
    for expected in [
        json!(["authorization", "[redacted]"]),
        json!(["proxy-authorization", "[redacted]"]),
        json!(["cookie", "[redacted]"]),
        json!(["x-team", "builds"]),
        json!(["x-github-delivery", "d-credentials"]),
    ] {
        assert!(
            stored.contains(&expected),
            "{expected} missing from {stored:?}"
        );
    }
    let text = shown.json.to_string();
    for secret in ["authorization-secret", "cHJveHk6c2VjcmV0", "cookie-secret"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
}

#[tokio::test]
async fn bad_requests_get_a_problem_naming_what_is_wrong() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let letter = seed::dead_letter(&env.db, "github", "ci", "2026-01-01T09:00:00Z").await;
    let get = async |path: &str| gw.admin_get(path, ONCALL).await;

    for listing in ["/v1/events", "/v1/dead-letters"] {
        for (query, slug, detail) in [
            ("since=yesterday", "bad-time", "since=\"yesterday\""),
            ("until=2026-13-01T00:00:00Z", "bad-time", "until="),
            ("since=2026-01-01", "bad-time", "RFC 3339"),
            (
                "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                "bad-time",
                "since must be earlier than until",
            ),
            (
                "since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",
                "bad-time",
                "since must be earlier than until",
            ),
            ("since=1h&until=2h", "bad-time", "earlier than until"),
            ("cursor=garbage", "bad-cursor", "next_cursor"),
            (
                "cursor=MTIzNDU2Nzg5L25vdC1hLXV1aWQ",
                "bad-cursor",
                "next_cursor",
            ),
            ("limit=0", "bad-limit", "from 1 to 500"),
            ("limit=501", "bad-limit", "from 1 to 500"),
            ("limit=1000000", "bad-limit", "from 1 to 500"),
            ("limit=-1", "bad-limit", "from 1 to 500"),
            ("limit=ten", "bad-limit", "from 1 to 500"),
            ("sorce=github", "bad-query", "sorce"),
            // Values Postgres cannot take are the client's mistake: 400, never 503.
            ("source=a%00b", "bad-query", "NUL"),
            ("since=10000y", "bad-time", "years 1 to 9999"),
            // base64url of "-300000000000000000/00000000-0000-0000-0000-000000000000"
            (
                "cursor=LTMwMDAwMDAwMDAwMDAwMDAwMC8wMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
                "bad-cursor",
                "next_cursor",
            ),
        ] {
            let reply = get(&format!("{listing}?{query}")).await;
            assert_problem(&reply, 400, slug, detail);
        }
    }
    assert_problem(
        &get("/v1/events?status=failed").await,
        400,
        "bad-status",
        "pending, delivered, dead_lettered",
    );
    assert_problem(
        &get("/v1/dead-letters?include_replayed=yes").await,
        400,
        "bad-query",
        "true or false",
    );
    assert_problem(
        &get("/v1/dead-letters?status=pending").await,
        400,
        "bad-query",
        "status",
    );

    let unknown = Uuid::new_v4();
    for path in [
        format!("/v1/events/{unknown}"),
        format!("/v1/dead-letters/{unknown}"),
        format!("/v1/operations/{unknown}"),
        format!("/v1/operations/{unknown}/result"),
    ] {
        assert_problem(&get(&path).await, 404, "not-found", &unknown.to_string());
    }
    for (method, path) in [
        (Method::POST, format!("/v1/dead-letters/{unknown}/replay")),
        (Method::DELETE, format!("/v1/dead-letters/{unknown}")),
        (Method::DELETE, format!("/v1/operations/{unknown}")),
    ] {
        let reply = send(gw.admin_request(method, &path, ONCALL)).await;
        assert_problem(&reply, 404, "not-found", &unknown.to_string());
    }
    for malformed in ["not-a-uuid", "1234", &letter.simple().to_string()[..31]] {
        for path in [
            format!("/v1/events/{malformed}"),
            format!("/v1/dead-letters/{malformed}"),
            format!("/v1/operations/{malformed}"),
            format!("/v1/operations/{malformed}/result"),
        ] {
            assert_problem(
                &get(&path).await,
                400,
                "bad-path",
                &format!("`{malformed}`"),
            );
        }
        for (method, path) in [
            (Method::POST, format!("/v1/dead-letters/{malformed}/replay")),
            (Method::DELETE, format!("/v1/dead-letters/{malformed}")),
            (Method::DELETE, format!("/v1/operations/{malformed}")),
        ] {
            let reply = send(gw.admin_request(method, &path, ONCALL)).await;
            assert_problem(&reply, 400, "bad-path", &format!("`{malformed}`"));
        }
    }

    let bulk = || gw.admin_request(Method::POST, "/v1/dead-letters/replay", ONCALL);
    for (body, detail) in [
        (json!({}), "\"all\": true"),
        (json!({"all": false}), "\"all\": true"),
        (
            json!({"all": true, "source": "github"}),
            "cannot be combined",
        ),
    ] {
        assert_problem(&send(bulk().json(&body)).await, 400, "bad-filter", detail);
    }
    assert_problem(
        &send(bulk().json(&json!({"source": "github", "since": "yesterday"}))).await,
        400,
        "bad-time",
        "since=\"yesterday\"",
    );
    assert_problem(
        &send(bulk().json(&json!({"since": "1h", "until": "2h"}))).await,
        400,
        "bad-time",
        "earlier than until",
    );
    assert_problem(
        &send(bulk().json(&json!({"source": "a\0b"}))).await,
        400,
        "bad-query",
        "NUL",
    );
    assert_problem(
        &send(bulk().json(&json!({"since": "10000y"}))).await,
        400,
        "bad-time",
        "years 1 to 9999",
    );
    let not_json = bulk()
        .header("content-type", "application/json")
        .body("replay everything, please");
    assert_problem(&send(not_json).await, 400, "bad-body", "as JSON");
    let untyped = bulk().body(r#"{"all": true}"#);
    assert_problem(
        &send(untyped).await,
        415,
        "bad-body",
        "Content-Type: application/json",
    );
    assert_problem(
        &send(bulk().json(&json!({"sorce": "github"}))).await,
        422,
        "bad-body",
        "sorce",
    );
    assert_problem(
        &send(bulk().json(&json!({"all": "yes"}))).await,
        422,
        "bad-body",
        "all: invalid type",
    );

    // Neither a route nor a method the API has.
    let reply = get("/v1/event").await;
    assert_problem(&reply, 404, "not-found", "no such admin route");
    let reply = send(gw.admin_request(Method::PUT, "/v1/events", ONCALL)).await;
    assert_problem(
        &reply,
        405,
        "method-not-allowed",
        "does not take that method",
    );

    // None of it changed anything.
    assert_eq!(env.count("SELECT count(*) FROM operations").await, 0);
    assert_eq!(
        env.count("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
            .await,
        1
    );
}

/// Every route `/v1/openapi.json` names is served by a running admin listener (the router's
/// route table is held against the same document in src/admin/mod.rs: nothing else routes).
#[tokio::test]
async fn every_route_the_openapi_document_lists_is_served() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    let reply = gw.admin_get("/v1/openapi.json", VIEWER).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.content_type.starts_with("application/json"),
        "{reply:?}"
    );
    let doc = &reply.json;
    let paths = doc["paths"]
        .as_object()
        .filter(|paths| !paths.is_empty())
        .unwrap_or_else(|| panic!("docs/admin-openapi.json lists no paths: {doc}"));
    // A `servers` entry such as "/v1" prefixes every path.
    let prefix = doc["servers"][0]["url"]
        .as_str()
        .filter(|url| url.starts_with('/'))
        .unwrap_or("")
        .trim_end_matches('/');
    let generic = |path: &str| {
        let mut out = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    out.push_str("{}");
                }
                _ if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    };

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "patch", "head", "options", "trace",
    ];
    for (path, item) in paths {
        let full = format!("{prefix}{path}");
        let concrete = generic(&full).replace("{}", &Uuid::new_v4().to_string());
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = gw.admin_request(method.clone(), &concrete, ONCALL);
            if method == Method::POST {
                request = request.json(&json!({}));
            }
            let response = request.send().await.unwrap();
            // A live stream stays open: that it answered is enough.
            if response
                .headers()
                .get("content-type")
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"))
            {
                assert_eq!(response.status(), 200, "{method} {full}");
                continue;
            }
            let reply = Reply::from(response).await;
            assert_ne!(
                reply.status, 405,
                "{method} {full} is documented: {reply:?}"
            );
            let fallback = reply.status == 404
                && reply.json["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such admin route"));
            assert!(!fallback, "{method} {full} is documented: {reply:?}");
        }
    }
}
