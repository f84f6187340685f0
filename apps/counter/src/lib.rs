//! The counter (DOMAIN.md, "Load simulator and counters"): its worker taps
//! one or more destinations with its own consumer group and counts events
//! by type and by destination over time windows ([`counts`]); at start it
//! reads the contexts' feeds named by `COUNTER_FEEDS` ([`feeds`],
//! [`rebuild`]) so its totals include what happened before it ran; its web
//! role serves the counts as JSON (`GET /v1/counts`) and Prometheus text
//! (`GET /metrics`). The counts live in memory, so the counter runs
//! Combined (role `all`): one process both counts and serves.

pub mod counts;
pub mod feeds;
mod prometheus;
pub mod rebuild;
pub mod run;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    cloudevent::CloudEvent,
    config::Standalone,
    consumer::{Handled, Handler},
    problem::Problem,
};

pub use counts::Counts;
pub use feeds::FeedStates;

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

/// The unix second of an RFC 3339 time (`2026-01-01T00:00:00.000Z`);
/// `None` when it is not one (0 for a time before 1970).
pub fn unix_seconds(rfc3339: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(u64::try_from(at.unix_timestamp()).unwrap_or_default())
}

/// The handler of the consumer of `destination`: counts the event under its
/// routing key (`<aggregate>.<EVENT>`, as the original's `payload.type`) and
/// its destination, at the time it was recorded (its CloudEvent `time`; now
/// when it has none).
pub fn handler(counts: Counts, destination: &str) -> Handler {
    let destination: std::sync::Arc<str> = destination.into();
    std::sync::Arc::new(move |event: CloudEvent| {
        let (counts, destination) = (counts.clone(), destination.clone());
        Box::pin(async move {
            let now = unix_now();
            let at = event.time.as_deref().and_then(unix_seconds).unwrap_or(now);
            counts.record(
                &counts::Event {
                    destination: &destination,
                    event_type: &event.routing_key(),
                    id: &event.id,
                    at,
                },
                now,
            );
            Ok(Handled::Done)
        })
    })
}

/// `GET /v1/counts/series?window=1m|5m|15m|1h` (default 5m): the window's
/// events by type in 60 buckets, for charts; 400 problem+json naming the
/// window when it is not one of [`counts::WINDOWS`].
async fn series(
    State(Served { counts: c, .. }): State<Served>,
    axum::extract::Query(query): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> axum::response::Response {
    let name = query.get("window").map(String::as_str).unwrap_or("5m");
    match counts::WINDOWS.iter().find(|(n, _)| *n == name) {
        Some((_, length)) => Json(c.series(unix_now(), *length)).into_response(),
        None => Problem::bad_request(
            "window",
            format!(
                "window {name:?} is not one of {}",
                counts::WINDOWS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into_response(),
    }
}

/// What the web role serves: the counts and the feeds' states.
#[derive(Clone)]
struct Served {
    counts: Counts,
    feeds: FeedStates,
}

/// `GET /v1/counts`: the counts with the state of each feed being read.
async fn counts_json(State(s): State<Served>) -> Json<serde_json::Value> {
    let mut body = s.counts.to_json(unix_now());
    body["feeds"] = s.feeds.to_json();
    Json(body)
}

/// The web role: `GET /v1/counts` (JSON), `GET /v1/counts/series` (chart
/// points) and `GET /metrics` (Prometheus).
pub fn router(counts: Counts, feeds: FeedStates) -> Router {
    Router::new()
        .route("/v1/counts", get(counts_json))
        .route("/v1/counts/series", get(series))
        .route(
            "/metrics",
            get(
                |State(Served { counts: c, .. }): State<Served>| async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        c.to_prometheus(unix_now()),
                    )
                        .into_response()
                },
            ),
        )
        .with_state(Served { counts, feeds })
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
        handler(counts.clone(), "order")(event("1", "order.ORDER_CREATED"))
            .await
            .unwrap();
        let app = router(counts, FeedStates::default());
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
        let points = body["byDestination"]["order"].as_array().unwrap();
        assert_eq!(points.iter().filter_map(Value::as_u64).sum::<u64>(), 1);
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
        let order = handler(counts.clone(), "order");
        order(event("1", "order.ORDER_CREATED")).await.unwrap();
        order(event("2", "order.ORDER_CREATED")).await.unwrap();
        order(event("2", "order.ORDER_CREATED")).await.unwrap();
        handler(counts.clone(), "payment")(event("3", "payment.PAYMENT_FAILED"))
            .await
            .unwrap();
        let mut old = event("4", "order.ORDER_SUCCEEDED");
        old.time = Some("2026-01-01T00:00:00.000Z".into());
        order(old).await.unwrap();
        let feeds = FeedStates::default();
        feeds.start(&feeds::Feed {
            destination: "order".into(),
            url: "http://o/v1/events".into(),
            routing_keys: vec!["#".into()],
        });
        let app = router(counts, feeds);
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
            json!({ "order.ORDER_CREATED": 2, "order.ORDER_SUCCEEDED": 1, "payment.PAYMENT_FAILED": 1 })
        );
        assert_eq!(body["byDestination"], json!({ "order": 3, "payment": 1 }));
        assert_eq!(
            body["windows"]["1m"],
            json!({ "order.ORDER_CREATED": 2, "payment.PAYMENT_FAILED": 1 }),
            "an event is placed at its own time: long ago is in no window"
        );
        assert_eq!(
            body["windowsByDestination"]["1m"],
            json!({ "order": 2, "payment": 1 })
        );
        assert_eq!(
            body["feeds"]["order"],
            json!({ "state": "reading", "events": 0, "url": "http://o/v1/events" })
        );
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
        assert!(
            text.contains("eventflow_counter_destination_events_total{destination=\"order\"} 3"),
            "{text}"
        );
    }
}
