//! The account web API's HTTP shape, in-process (tower `oneshot`, no port):
//! HAL links from the request's Host, problem+json errors naming the field,
//! the state rules, idempotency keys and concurrent commands. SQLite always;
//! the tests where the database matters run on PostgreSQL too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::api::{Api, is_problem};
use eventflow_runtime::testing::fresh_sqlite;
use serde_json::json;

/// The crate's directory, read when the test runs: a target directory shared
/// between clones may hold a binary built in another checkout.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

#[tokio::test]
async fn a_created_account_links_to_itself_its_events_and_commands_through_the_callers_host() {
    let api = Api::new(&fresh_sqlite()).await;
    let a = api.create("grace@example.com").await;
    let id = a["accountId"].as_str().unwrap();
    assert_eq!(a["status"], "CREATED");
    let base = format!("http://accounts.test:8080/v1/accounts/{id}");
    assert_eq!(a["_links"]["self"]["href"], base);
    assert_eq!(a["_links"]["events"]["href"], format!("{base}/events"));
    assert_eq!(a["_links"]["commands"]["href"], format!("{base}/commands"));
    let got = api
        .call(
            "GET",
            &format!("/v1/accounts/{id}"),
            None,
            &[("x-forwarded-host", "shop.example")],
        )
        .await;
    assert_eq!(got.content_type, "application/hal+json");
    assert_eq!(got.body["email"], "grace@example.com");
    assert_eq!(
        got.body["_links"]["self"]["href"],
        format!("http://shop.example/v1/accounts/{id}")
    );
}

#[tokio::test]
async fn the_account_list_pages_with_next_links_until_the_end() {
    let api = Api::new(&fresh_sqlite()).await;
    for i in 0..5 {
        api.create(&format!("p{i}@example.com")).await;
    }
    let mut uri = "/v1/accounts?limit=2".to_owned();
    let mut seen = Vec::new();
    loop {
        let r = api.call("GET", &uri, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        for a in r.body["_embedded"]["accounts"].as_array().unwrap() {
            seen.push(a["email"].as_str().unwrap().to_owned());
        }
        match r.body["_links"]["next"]["href"].as_str() {
            Some(next) => {
                uri = next
                    .trim_start_matches("http://accounts.test:8080")
                    .to_owned()
            }
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5)
            .map(|i| format!("p{i}@example.com"))
            .collect::<Vec<_>>()
    );
    is_problem(
        &api.call("GET", "/v1/accounts?limit=0", None, &[]).await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn suspend_activate_and_archive_follow_the_state_rules() {
    let api = Api::new(&fresh_sqlite()).await;
    let a = api.create("rules@example.com").await;
    let forbidden = api.command(&a, "suspend").await;
    is_problem(&forbidden, StatusCode::CONFLICT);
    assert!(
        forbidden.body["detail"]
            .as_str()
            .unwrap()
            .contains("CREATED"),
        "{}",
        forbidden.body
    );
    for c in ["markPending", "confirm", "activate", "suspend"] {
        assert_eq!(api.command(&a, c).await.status, StatusCode::OK, "{c}");
    }
    is_problem(&api.command(&a, "archive").await, StatusCode::CONFLICT);
    assert_eq!(api.command(&a, "activate").await.body["status"], "ACTIVE");
    assert_eq!(api.command(&a, "archive").await.body["status"], "ARCHIVED");
    is_problem(&api.command(&a, "suspend").await, StatusCode::CONFLICT);
    assert_eq!(
        api.events(&a).await,
        [
            "ACCOUNT_CREATED",
            "ACCOUNT_PENDING",
            "ACCOUNT_CONFIRMED",
            "ACCOUNT_ACTIVATED",
            "ACCOUNT_SUSPENDED",
            "ACCOUNT_ACTIVATED",
            "ACCOUNT_ARCHIVED"
        ]
    );
}

#[tokio::test]
async fn commands_lists_only_what_is_valid_now_as_links() {
    let api = Api::new(&fresh_sqlite()).await;
    let a = api.active("cmds@example.com").await;
    let id = a["accountId"].as_str().unwrap();
    let r = api
        .call("GET", &format!("/v1/accounts/{id}/commands"), None, &[])
        .await;
    assert_eq!(r.body["commands"], json!(["suspend", "archive"]));
    assert_eq!(
        r.body["_links"]["suspend"]["href"],
        format!("http://accounts.test:8080/v1/accounts/{id}/commands/suspend")
    );
    assert!(r.body["_links"].get("activate").is_none());
    let post_order = api.command(&a, "postOrder").await;
    is_problem(&post_order, StatusCode::CONFLICT);
    assert!(
        post_order.body["detail"]
            .as_str()
            .unwrap()
            .contains("order context"),
        "{}",
        post_order.body
    );
}

#[tokio::test]
async fn malformed_json_and_missing_fields_are_400_problems_naming_the_field() {
    let api = Api::new(&fresh_sqlite()).await;
    let r = api
        .call("POST", "/v1/accounts", Some("{\"firstName\": "), &[])
        .await;
    is_problem(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "body");
    let r = api
        .call(
            "POST",
            "/v1/accounts",
            Some(r#"{"firstName":"A","lastName":"B"}"#),
            &[],
        )
        .await;
    is_problem(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "email");
    let r = api
        .call(
            "POST",
            "/v1/accounts",
            Some(r#"{"firstName":"A","lastName":7,"email":"a@b"}"#),
            &[],
        )
        .await;
    assert_eq!(r.body["field"], "lastName");
    let r = api
        .call(
            "POST",
            "/v1/accounts",
            Some(r#"{"firstName":"A","lastName":"B","email":"nope"}"#),
            &[],
        )
        .await;
    is_problem(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["field"], "email");
}

#[tokio::test]
async fn unknown_accounts_events_and_commands_are_404_problems() {
    let api = Api::new(&fresh_sqlite()).await;
    is_problem(
        &api.call("GET", "/v1/accounts/nobody", None, &[]).await,
        StatusCode::NOT_FOUND,
    );
    is_problem(
        &api.call("GET", "/v1/accounts/nobody/events", None, &[])
            .await,
        StatusCode::NOT_FOUND,
    );
    is_problem(
        &api.call("POST", "/v1/accounts/nobody/commands/suspend", None, &[])
            .await,
        StatusCode::NOT_FOUND,
    );
    let a = api.create("known@example.com").await;
    let id = a["accountId"].as_str().unwrap();
    is_problem(&api.command(&a, "explode").await, StatusCode::NOT_FOUND);
    is_problem(
        &api.call("GET", &format!("/v1/accounts/{id}/events/nope"), None, &[])
            .await,
        StatusCode::NOT_FOUND,
    );
    is_problem(
        &api.call("GET", "/v2/anything", None, &[]).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn an_email_can_belong_to_one_account_only() {
    let api = Api::new(&fresh_sqlite()).await;
    api.create("once@example.com").await;
    let body =
        json!({ "firstName": "X", "lastName": "Y", "email": "ONCE@example.com" }).to_string();
    let r = api.call("POST", "/v1/accounts", Some(&body), &[]).await;
    is_problem(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["field"], "email");
}

#[tokio::test]
async fn each_event_has_self_and_account_links_and_the_global_feed_replays_everything() {
    let api = Api::new(&fresh_sqlite()).await;
    let a = api.active("feed@example.com").await;
    let b = api.create("feed2@example.com").await;
    let id = a["accountId"].as_str().unwrap();
    let log = api
        .call("GET", &format!("/v1/accounts/{id}/events"), None, &[])
        .await
        .body;
    let first = &log["_embedded"]["events"][0];
    let self_href = first["_links"]["self"]["href"].as_str().unwrap();
    assert_eq!(
        first["_links"]["account"]["href"],
        format!("http://accounts.test:8080/v1/accounts/{id}")
    );
    let one = api
        .call(
            "GET",
            self_href.trim_start_matches("http://accounts.test:8080"),
            None,
            &[],
        )
        .await;
    assert_eq!(one.body["eventType"], "ACCOUNT_CREATED");
    assert_eq!(one.body["payload"]["email"], "feed@example.com");

    let mut uri = "/v1/events?after=0&limit=2".to_owned();
    let mut types = Vec::new();
    loop {
        let page = api.call("GET", &uri, None, &[]).await.body;
        for e in page["_embedded"]["events"].as_array().unwrap() {
            types.push((
                e["aggregateId"].as_str().unwrap().to_owned(),
                e["eventType"].as_str().unwrap().to_owned(),
            ));
        }
        match page["_links"]["next"]["href"].as_str() {
            Some(next) => {
                uri = next
                    .trim_start_matches("http://accounts.test:8080")
                    .to_owned()
            }
            None => break,
        }
    }
    assert_eq!(types.len(), 5);
    assert_eq!(
        types[4],
        (
            b["accountId"].as_str().unwrap().to_owned(),
            "ACCOUNT_CREATED".to_owned()
        )
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_account_route() {
    let api = Api::new(&fresh_sqlite()).await;
    let doc = api.call("GET", "/openapi.json", None, &[]).await.body;
    assert_eq!(doc["openapi"], "3.0.3");
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for p in [
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/accounts/{id}/events",
        "/v1/accounts/{id}/events/{eventId}",
        "/v1/accounts/{id}/commands",
        "/v1/accounts/{id}/commands/{command}",
        "/v1/events",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert_eq!(
        doc["components"]["schemas"]["NewAccount"]["required"],
        json!(["firstName", "lastName", "email"])
    );
}

#[test]
fn the_committed_openapi_document_matches_the_served_one() {
    let path = format!("{}/openapi.json", manifest_dir());
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == eventflow_account::openapi_json(),
        "apps/account/openapi.json is stale: run `cargo run -q -p eventflow-account --bin account -- openapi > apps/account/openapi.json`"
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_class() {
    let api = Api::new(&fresh_sqlite()).await;
    let a = api.create("metrics@example.com").await;
    let id = a["accountId"].as_str().unwrap();
    api.call("GET", &format!("/v1/accounts/{id}"), None, &[])
        .await;
    api.call("GET", "/v1/accounts/nobody", None, &[]).await;
    api.call("GET", "/nowhere", None, &[]).await;
    let text = api.metrics.render();
    for line in [
        r#"eventflow_http_requests_total{route="/v1/accounts",status="2xx"} 1"#,
        r#"eventflow_http_requests_total{route="/v1/accounts/{id}",status="2xx"} 1"#,
        r#"eventflow_http_requests_total{route="/v1/accounts/{id}",status="4xx"} 1"#,
        r#"eventflow_http_requests_total{route="unmatched",status="4xx"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}
