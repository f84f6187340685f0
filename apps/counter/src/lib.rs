//! The counter (DOMAIN.md, "Load simulator and counters"): its worker taps
//! one or more destinations with its own consumer group and counts events
//! by type over time windows ([`counts`]); its web role serves the counts as
//! JSON (`GET /v1/counts`) and Prometheus text (`GET /metrics`). The counts
//! live in memory, so the counter runs Combined (role `all`): one process
//! both counts and serves.

pub mod counts;
pub mod run;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    cloudevent::CloudEvent,
    config::Standalone,
    consumer::{Handled, Handler},
};

pub use counts::Counts;

pub const APP: &str = "counter";
pub const GROUP: &str = "counter";
/// Destinations tapped when no operator wrote `EVENTFLOW_BINDINGS`.
pub const STANDALONE_DESTINATIONS: &[&str] = &["account", "order", "payment", "warehouse"];

/// A tap on every destination of the reference system, every routing key.
pub fn standalone() -> Standalone {
    Standalone {
        publishes: vec![],
        subscribes: STANDALONE_DESTINATIONS
            .iter()
            .map(|d| SubscriptionRequest {
                destination: d,
                group: GROUP,
                routing_keys: vec!["#".into()],
                max_attempts: 3,
                backoff_ms: 1_000,
            })
            .collect(),
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The worker's handler: counts the event under its routing key
/// (`<aggregate>.<EVENT>`, as the original's `payload.type`).
pub fn handler(counts: Counts) -> Handler {
    std::sync::Arc::new(move |event: CloudEvent| {
        let counts = counts.clone();
        Box::pin(async move {
            counts.record(&event.routing_key(), &event.id, unix_now());
            Ok(Handled::Done)
        })
    })
}

/// `GET /v1/counts/series?window=1m|5m|15m|1h` (default 5m): the window's
/// events by type in 60 buckets, for charts; 400 problem+json naming the
/// window when it is not one of [`counts::WINDOWS`].
async fn series(
    State(c): State<Counts>,
    axum::extract::Query(query): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> axum::response::Response {
    let name = query.get("window").map(String::as_str).unwrap_or("5m");
    match counts::WINDOWS.iter().find(|(n, _)| *n == name) {
        Some((_, length)) => Json(c.series(unix_now(), *length)).into_response(),
        None => (
            axum::http::StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": format!(
                    "window {name:?} is not one of {}",
                    counts::WINDOWS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            })
            .to_string(),
        )
            .into_response(),
    }
}

/// The web role: `GET /v1/counts` (JSON), `GET /v1/counts/series` (chart
/// points) and `GET /metrics` (Prometheus).
pub fn router(counts: Counts) -> Router {
    Router::new()
        .route(
            "/v1/counts",
            get(|State(c): State<Counts>| async move { Json(c.to_json(unix_now())) }),
        )
        .route("/v1/counts/series", get(series))
        .route(
            "/metrics",
            get(|State(c): State<Counts>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    c.to_prometheus(unix_now()),
                )
                    .into_response()
            }),
        )
        .with_state(counts)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    fn event(id: &str, kind: &str) -> CloudEvent {
        serde_json::from_value(json!({
            "specversion": "1.0", "id": id, "source": "http://order/v1/orders",
            "type": format!("dev.eventflow.{kind}"), "data": {}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn series_answer_a_known_window_and_refuse_another_naming_it() {
        let counts = Counts::default();
        counts.record("order.ORDER_CREATED", "1", unix_now());
        let app = router(counts);
        let get = |uri: &'static str| {
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(axum::http::Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = response.status();
                let body: Value = serde_json::from_slice(
                    &response.into_body().collect().await.unwrap().to_bytes(),
                )
                .unwrap();
                (status, body)
            }
        };
        let (status, body) = get("/v1/counts/series?window=1m").await;
        assert_eq!(status, 200);
        assert_eq!(body["step"], 1);
        // Its bucket is the last or, past a second's turn, the one before.
        let points = body["byType"]["order.ORDER_CREATED"].as_array().unwrap();
        assert_eq!(
            points.iter().filter_map(Value::as_u64).sum::<u64>(),
            1,
            "{body}"
        );
        assert_eq!(points.len(), 60);
        let (status, body) = get("/v1/counts/series").await;
        assert_eq!((status.as_u16(), body["step"].as_u64()), (200, Some(5)));
        let (status, body) = get("/v1/counts/series?window=2d").await;
        assert_eq!(status, 400);
        assert!(
            body["detail"].as_str().unwrap().contains("\"2d\""),
            "{body}"
        );
    }

    #[tokio::test]
    async fn the_web_role_serves_what_the_worker_counted() {
        let counts = Counts::default();
        let handle = handler(counts.clone());
        handle(event("1", "order.ORDER_CREATED")).await.unwrap();
        handle(event("2", "order.ORDER_CREATED")).await.unwrap();
        handle(event("2", "order.ORDER_CREATED")).await.unwrap();
        handle(event("3", "payment.PAYMENT_FAILED")).await.unwrap();
        let app = router(counts);
        let response = app
            .clone()
            .oneshot(
                axum::http::Request::get("/v1/counts")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(
            body["byType"],
            json!({ "order.ORDER_CREATED": 2, "payment.PAYMENT_FAILED": 1 })
        );
        assert_eq!(body["windows"]["1m"]["order.ORDER_CREATED"], 2);
        let response = app
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let text = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.contains("eventflow_counter_events_total{type=\"payment.PAYMENT_FAILED\"} 1"),
            "{text}"
        );
    }
}
