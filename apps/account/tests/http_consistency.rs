//! The account web API's consistency under repeats and races, in-process,
//! on SQLite and on PostgreSQL: an Idempotency-Key applies once, and two
//! commands racing on one account never both win.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::api::{Api, is_problem};
use eventflow_runtime::testing::{fresh_postgres, fresh_sqlite};
use serde_json::json;

async fn a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing(url: &str) {
    let api = Api::new(url).await;
    let a = api.create("idem@example.com").await;
    let id = a["accountId"].as_str().unwrap();
    let uri = format!("/v1/accounts/{id}/commands/markPending");
    let key = [("idempotency-key", "evt-1:markPending:acc")];
    let first = api.call("POST", &uri, None, &key).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = api.call("POST", &uri, None, &key).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    assert_eq!(api.events(&a).await.len(), 2);
    // Without the key the same command is a forbidden transition now.
    is_problem(
        &api.call("POST", &uri, None, &[]).await,
        StatusCode::CONFLICT,
    );

    let body =
        json!({ "firstName": "I", "lastName": "D", "email": "idem2@example.com" }).to_string();
    let key = [("idempotency-key", "create-1")];
    let c1 = api.call("POST", "/v1/accounts", Some(&body), &key).await;
    let c2 = api.call("POST", "/v1/accounts", Some(&body), &key).await;
    assert_eq!(c1.status, StatusCode::CREATED);
    assert_eq!(c2.body["accountId"], c1.body["accountId"]);
    // The same key on another target is another request.
    let other = api
        .call(
            "POST",
            &format!(
                "/v1/accounts/{}/commands/markPending",
                c1.body["accountId"].as_str().unwrap()
            ),
            None,
            &key,
        )
        .await;
    assert_eq!(
        (other.status, other.body["status"].as_str()),
        (StatusCode::OK, Some("PENDING"))
    );
}

async fn concurrent_suspend_and_archive_yield_one_success_one_conflict_and_one_event(url: &str) {
    let api = Arc::new(Api::new(url).await);
    for round in 0..5 {
        let a = api.active(&format!("race{round}@example.com")).await;
        let (s, r) = tokio::join!(
            {
                let (api, a) = (api.clone(), a.clone());
                tokio::spawn(async move { api.command(&a, "suspend").await.status })
            },
            {
                let (api, a) = (api.clone(), a.clone());
                tokio::spawn(async move { api.command(&a, "archive").await.status })
            }
        );
        let mut statuses = [s.unwrap().as_u16(), r.unwrap().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}");
        let events = api.events(&a).await;
        assert_eq!(events.len(), 5, "{events:?}");
        assert!(matches!(
            events[4].as_str(),
            "ACCOUNT_SUSPENDED" | "ACCOUNT_ARCHIVED"
        ));
    }
}

#[tokio::test]
async fn sqlite_a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing() {
    a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing(&fresh_sqlite()).await;
}

#[tokio::test]
#[ignore = "needs postgres"]
async fn postgres_a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing() {
    a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing(
        &fresh_postgres().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_suspend_and_archive_yield_one_success_one_conflict_and_one_event() {
    concurrent_suspend_and_archive_yield_one_success_one_conflict_and_one_event(&fresh_sqlite())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs postgres"]
async fn postgres_concurrent_suspend_and_archive_yield_one_success_one_conflict_and_one_event() {
    concurrent_suspend_and_archive_yield_one_success_one_conflict_and_one_event(
        &fresh_postgres().await,
    )
    .await;
}
