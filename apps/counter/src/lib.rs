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

/// The web role: `GET /v1/counts` (JSON) and `GET /metrics` (Prometheus).
pub fn router(counts: Counts) -> Router {
    Router::new()
        .route(
            "/v1/counts",
            get(|State(c): State<Counts>| async move { Json(c.to_json(unix_now())) }),
        )
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
