//! The passage against the real counter and load simulator routers, each
//! served on a loopback port of its own.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::{body::Body, http::Request};
use eventflow_operator::api::Stream;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::testing::Fixed;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn stream() -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop", "namespace": "demo"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "tally", "image": "docker.io/eventflow/counter:dev", "packaging": "Combined",
             "web": {"replicas": 1}, "worker": {},
             "subscribes": [{"destination": "order", "group": "tally", "eventTypes": ["#"]}]},
            {"name": "load", "image": "docker.io/eventflow/load-simulator:dev", "web": {"replicas": 1}},
            {"name": "order", "image": "docker.io/eventflow/order:dev", "web": {"replicas": 1},
             "publishes": ["order"]},
        ]}
    }))
    .unwrap()
}

/// The dashboard, reaching `tally` and `load` at the given URLs and every
/// other app at a port nothing listens on.
fn dashboard(counter: String, simulator: String) -> Router {
    let resolve: crate::apps::Resolve = Arc::new(move |_, _, app| {
        Some(match app.name.as_str() {
            "tally" => counter.clone(),
            "load" => simulator.clone(),
            _ => "http://127.0.0.1:0".into(),
        })
    });
    crate::http::router(Fixed::new(vec![stream()]), Upstream::new(resolve))
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<&str>) -> (u16, String, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_page_reads_the_counter_and_starts_and_follows_a_load_run() {
    let counts = eventflow_counter::Counts::default();
    let now = eventflow_counter::unix_now();
    for id in ["e1", "e2"] {
        let event = eventflow_counter::counts::Event {
            destination: "order",
            event_type: "order.ORDER_CREATED",
            id,
            at: now,
        };
        counts.record(&event, now);
    }
    let counter = serve(eventflow_counter::router(
        counts,
        eventflow_counter::feeds::FeedStates::default(),
    ))
    .await;
    // Order and warehouse at a port nothing listens on: runs start, then fail.
    let nowhere = Some("http://127.0.0.1:0".to_owned());
    let simulator = serve(eventflow_load_simulator::router(
        eventflow_load_simulator::Simulator::new(eventflow_load_simulator::simulate::Targets {
            order: nowhere.clone(),
            warehouse: nowhere,
            account: None,
        }),
    ))
    .await;
    let app = dashboard(counter, simulator);
    let base = "/api/streams/demo/shop/apps";

    let (status, _, series) = call(
        &app,
        "GET",
        &format!("{base}/tally/v1/counts/series?window=1m"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{series}");
    let points = series["byType"]["order.ORDER_CREATED"].as_array().unwrap();
    assert_eq!(points.iter().filter_map(Value::as_u64).sum::<u64>(), 2);
    let by_destination = series["byDestination"]["order"].as_array().unwrap();
    assert_eq!(
        by_destination.iter().filter_map(Value::as_u64).sum::<u64>(),
        2,
        "{series}"
    );
    // The counter's own refusal comes back as it was.
    let (status, content_type, refusal) = call(
        &app,
        "GET",
        &format!("{base}/tally/v1/counts/series?window=2d"),
        None,
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (400, "application/problem+json")
    );
    assert!(
        refusal["detail"].as_str().unwrap().contains("2d"),
        "{refusal}"
    );

    let (status, _, run) = call(
        &app,
        "POST",
        &format!("{base}/load/v1/runs"),
        Some(r#"{"orders": 5, "ratePerSecond": 50}"#),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let id = run["runId"].as_str().unwrap();
    let (status, _, runs) = call(&app, "GET", &format!("{base}/load/v1/runs"), None).await;
    assert_eq!(status, 200);
    assert_eq!(runs["_embedded"]["runs"][0]["runId"], id);
    let (status, _, one) = call(&app, "GET", &format!("{base}/load/v1/runs/{id}"), None).await;
    assert_eq!((status, one["plan"]["orders"].as_u64()), (200, Some(5)));
    let (status, _, refusal) = call(
        &app,
        "POST",
        &format!("{base}/load/v1/runs"),
        Some(r#"{"orders": 0}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(refusal.to_string().contains("orders"), "{refusal}");
}

#[tokio::test]
async fn what_the_page_may_not_ask_is_refused_naming_it() {
    let app = dashboard("http://127.0.0.1:0".into(), "http://127.0.0.1:0".into());
    let base = "/api/streams/demo/shop/apps";
    for (method, uri, want, names) in [
        (
            "GET",
            "/api/streams/demo/nope/apps/tally/v1/counts",
            404,
            "no Stream demo/nope",
        ),
        (
            "GET",
            &format!("{base}/order/v1/orders") as &str,
            404,
            "\"order\"",
        ),
        ("GET", &format!("{base}/tally/metrics"), 404, "GET /metrics"),
        (
            "DELETE",
            &format!("{base}/load/v1/runs"),
            404,
            "DELETE /v1/runs",
        ),
        (
            "GET",
            &format!("{base}/tally/v1/counts"),
            502,
            "tally of demo/shop did not answer",
        ),
    ] {
        let (status, content_type, body) = call(&app, method, uri, None).await;
        assert_eq!(
            (status, content_type.as_str()),
            (want, "application/problem+json"),
            "{method} {uri}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(names),
            "{method} {uri}: {body}"
        );
    }
    // A POST that is not JSON (a form from another site) does not reach the app.
    let response = app
        .oneshot(
            Request::post(format!("{base}/load/v1/runs"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("orders=5"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}
