//! The operator's console: served by the admin listener only, under a strict CSP, and the
//! operator flows end to end in a real (headless) browser.

mod common;

use common::TestEnv;
use common::admin::*;
use common::browser::Browser;
use common::sink::{Answer, Sink};
use common::tokens::ONCALL;
use reqwest::Method;

#[tokio::test]
async fn the_console_is_served_on_the_admin_listener_only_with_a_strict_policy() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let response = gw.http.get(format!("{}{path}", gw.admin)).send().await;
        let response = response.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.starts_with("default-src 'self'; script-src 'self'; style-src 'self'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = response.text().await.unwrap();
        // No inline script or style for the policy to refuse: the page only links its assets.
        if kind == "text/html" {
            assert!(body.contains(r#"<script src="/console/console.js" defer></script>"#));
            assert!(!body.contains("<style") && !body.contains("style="));
            assert_eq!(body.matches("<script").count(), 1);
            // No event handler attributes (onclick=...).
            let handler = body.split(" on").skip(1).find(|rest| {
                (rest.split_whitespace().next()).is_some_and(|word| word.contains('='))
            });
            assert_eq!(handler, None);
        }
    }
    let public = gw.get("/console").await;
    assert_eq!(public.status, 404, "{public:?}");
    gw.stop().await;
}

/// Sign in, find an event by its provider id, watch it go from retrying to dead-lettered as
/// it happens, replay it, see it delivered.
#[tokio::test]
async fn an_operator_watches_an_event_die_and_replays_it_in_the_browser() {
    let env = TestEnv::new().await;
    let sink = Sink::start().await;
    sink.set_default(Answer::status(500));
    let gw = env.start(&delivering_to(&sink, 2, "5s")).await;
    let id = receive(&gw, "provider-42", br#"{"order":{"id":42,"total":"9.90"}}"#).await;
    // After its first failure, the destination is paused, so the event stays retrying until
    // the test lets the second attempt happen.
    poll(&gw, &format!("/v1/events/{id}"), |r| {
        r.json["deliveries"][0]["state"] == "retrying"
    })
    .await;
    let pause = send(gw.admin_request(
        Method::POST,
        "/v1/destinations/github/billing/pause",
        ONCALL,
    ));
    assert_eq!(pause.await.status, 200);

    let browser = Browser::start().await;
    browser.goto(&format!("{}/console", gw.admin)).await;
    browser.type_into("#token", ONCALL).await;
    browser.click("#sign-in").await;
    browser.wait_for_text("#page h2", |t| t == "Overview").await;
    browser.click("a[data-page=events]").await;
    browser
        .type_into("#search-external_id", "provider-42")
        .await;
    browser.click("#search").await;
    browser
        .wait_for_text(&format!("tr[data-event='{id}']"), |t| {
            t.contains("provider-42")
        })
        .await;
    browser.screenshot("console-events").await;
    browser
        .click(&format!("tr[data-event='{id}'] a.event-link"))
        .await;
    browser
        .wait_for_text("tr[data-destination=billing] .state", |t| t == "retrying")
        .await;
    browser
        .wait_for_text("#timeline", |t| t.contains("attempt_failed"))
        .await;
    let payload = browser
        .wait_for_text("#payload", |t| t.contains("9.90"))
        .await;
    assert!(
        payload.contains("\n  \"order\": {"),
        "pretty-printed: {payload}"
    );

    // The second attempt fails too: the page shows the delivery dead-lettered, live.
    let resume = send(gw.admin_request(
        Method::POST,
        "/v1/destinations/github/billing/resume",
        ONCALL,
    ));
    assert_eq!(resume.await.status, 200);
    browser
        .wait_for_text(
            "#timeline li[data-kind=dead_lettered][data-destination=billing]",
            |t| t.contains("HTTP 500"),
        )
        .await;
    browser
        .wait_for_text("tr[data-destination=billing] .state", |t| t == "dead")
        .await;
    browser.screenshot("console-event").await;

    sink.set_default(Answer::status(200));
    browser.click("button.replay").await;
    browser
        .wait_for_text(
            "#timeline li[data-kind=delivered][data-destination=billing]",
            |_| true,
        )
        .await;
    browser.wait_for_text("#status", |t| t == "delivered").await;
    assert_eq!(sink.received().len(), 3);

    // The overview follows every change live.
    browser.click("a[data-page=overview]").await;
    browser.wait_for("#feed[data-live]").await;
    let next = receive(&gw, "provider-43", br#"{"order":{"id":43}}"#).await;
    let short = &next.to_string()[..8];
    browser
        .wait_for_text("#feed", |t| t.contains(short) && t.contains("delivered"))
        .await;
    // Receivers add their counts every second, the overview reads them every few.
    browser
        .wait_for_text("#traffic tr[data-source=github] .accepted", |t| t == "2")
        .await;
    browser.screenshot("console-overview").await;
    browser.click("a[data-page=destinations]").await;
    browser
        .wait_for_text("tr[data-destination='github/billing']", |t| {
            t.contains("Pause")
        })
        .await;
    browser.screenshot("console-destinations").await;
    browser.close().await;
    gw.stop().await;
}

/// The dead letters page lists what is open and replays it in bulk, with the operation's
/// progress.
#[tokio::test]
async fn an_operator_bulk_replays_dead_letters_with_progress() {
    let env = TestEnv::new().await;
    let gw = seeded_gateway(&env).await;
    common::seed::dead_letters(&env.db, "github", "ci", 3).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/console#/dead-letters", gw.admin))
        .await;
    browser.type_into("#token", ONCALL).await;
    browser.click("#sign-in").await;
    browser
        .type_into("#dead-letter-filters input[name=source]", "github")
        .await;
    browser.click("#dead-letter-filters button").await;
    browser
        .wait_for_text("#page table tbody", |t| t.matches("Replay").count() == 3)
        .await;
    browser.screenshot("console-dead-letters").await;
    // No dialog in a headless test: confirm() answers yes.
    (browser.client)
        .execute("window.confirm = () => true", vec![])
        .await
        .unwrap();
    browser.click("#replay-all").await;
    browser
        .wait_for_text("#bulk-progress", |t| {
            t.starts_with("succeeded: 3 replayed, 0 failed of 3")
        })
        .await;
    browser.close().await;
    gw.stop().await;
}

/// `GET /v1/sources` (the overview's table) counts every receiver's answers per source:
/// refusals and duplicates too, which leave no event row.
#[tokio::test]
async fn the_sources_listing_counts_every_receivers_requests_by_outcome() {
    let env = TestEnv::new().await;
    let (first, second) = (seeded_gateway(&env).await, seeded_gateway(&env).await);
    for (gw, delivery) in [(&first, "d-1"), (&first, "d-2"), (&second, "d-3")] {
        receive(gw, delivery, b"{}").await;
    }
    let again = first
        .post("github", &common::sign::github(SECRET, "d-1", b"{}"), b"{}")
        .await;
    assert_eq!(again.json["status"], "duplicate");
    for gw in [&first, &second] {
        let forged = gw
            .post(
                "github",
                &common::sign::github("wrong", "d-9", b"{}"),
                b"{}",
            )
            .await;
        assert_eq!(forged.status, 401);
    }
    let stray = first.post("nobody", &[], b"{}").await;
    assert_eq!(stray.status, 404);

    let reply = poll(&first, "/v1/sources", |r| {
        r.json["items"][0]["received"] == 6
    })
    .await;
    let items = reply.json["items"].as_array().unwrap();
    // Both configured sources, counted or not; never a name a caller made up.
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["github", "gitlab"]);
    let github = &items[0];
    assert_eq!(github["accepted"], 3, "{github}");
    assert_eq!(github["duplicate"], 1, "{github}");
    assert_eq!(github["refused"], 2, "{github}");
    assert_eq!(
        github["outcomes"],
        serde_json::json!({"accepted": 3, "duplicate": 1, "unverified": 2})
    );
    assert_eq!(items[1]["received"], 0);

    // Counted from the start of `since`'s minute: the last minute holds them all.
    let recent = send(first.admin_request(Method::GET, "/v1/sources?since=1m", ONCALL)).await;
    assert_eq!(recent.json["items"][0]["received"], 6, "{recent:?}");
    let too_old = send(first.admin_request(Method::GET, "/v1/sources?since=25h", ONCALL)).await;
    assert_problem(&too_old, 400, "bad-time", "kept for a day");
    first.stop().await;
    second.stop().await;
}
