//! The dashboard's HTTP side: the page and its assets (served by the
//! dashboard itself, nothing from a CDN), the JSON it reads, live updates
//! as server-sent events, and the probes. Every route only reads.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
    routing::get,
};
use futures::Stream as FuturesStream;

use crate::{problem::problem, snapshot::Snapshot};

/// Where the API's answers come from: the live cache, or a fixed snapshot
/// in tests.
pub trait Source: Clone + Send + Sync + 'static {
    fn snapshot(&self) -> Snapshot;
    fn ready(&self) -> bool;
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

impl Source for crate::cache::Cache {
    fn snapshot(&self) -> Snapshot {
        crate::cache::Cache::snapshot(self)
    }
    fn ready(&self) -> bool {
        self.is_ready()
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        crate::cache::Cache::changes(self)
    }
}

/// Live updates are sent at most this often, however busy the cluster.
const UPDATE_EVERY: Duration = Duration::from_millis(1_000);

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const APPS_SCRIPT: &str = include_str!("../ui/apps.js");
const STYLE: &str = include_str!("../ui/style.css");

/// The page, its API and the passage to a Stream's counter and load
/// simulator ([`crate::proxy`]).
pub fn router<S: Source>(source: S, upstream: crate::proxy::Upstream) -> Router {
    let apps = crate::proxy::routes(source.clone(), upstream);
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/apps.js",
            get(|| async { asset("text/javascript; charset=utf-8", APPS_SCRIPT) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/overview", get(overview::<S>))
        .route("/api/streams/{namespace}/{name}", get(stream::<S>))
        .route("/api/updates", get(updates::<S>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::<S>))
        .with_state(source)
        .merge(apps)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn overview<S: Source>(State(source): State<S>) -> Response {
    Json(source.snapshot().overview()).into_response()
}

async fn stream<S: Source>(
    State(source): State<S>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match source.snapshot().stream(&namespace, &name) {
        Some(detail) => Json(detail).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no Stream {namespace}/{name}"),
        ),
    }
}

async fn ready<S: Source>(State(source): State<S>) -> Response {
    if source.ready() {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "listing").into_response()
    }
}

/// `changed` with the generation whenever a watched object changed, at most
/// once per [`UPDATE_EVERY`]; the page then reads what it shows again.
async fn updates<S: Source>(
    State(source): State<S>,
) -> Sse<impl FuturesStream<Item = Result<SseEvent, Infallible>>> {
    let changes = source.changes();
    let stream = futures::stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        tokio::time::sleep(UPDATE_EVERY).await;
        let generation = *changes.borrow_and_update();
        Some((
            Ok(SseEvent::default()
                .event("changed")
                .data(generation.to_string())),
            changes,
        ))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::body::Body;
    use eventflow_operator::api::Stream;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        let shop: Stream = serde_yaml::from_str(include_str!(
            "../../operator/tests/fixtures/valid/stream-shop.yaml"
        ))
        .unwrap();
        router(
            crate::testing::Fixed::new(vec![shop]),
            crate::proxy::Upstream::new(crate::apps::service_url()),
        )
    }

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = app()
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_assets_come_from_the_dashboard_itself() {
        let (status, content_type, page) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"));
        assert!(page.contains(r#"<script src="app.js">"#));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no CDN"
        );
        let (_, content_type, script) = get("/app.js").await;
        assert!(content_type.starts_with("text/javascript"));
        assert!(script.contains("api/overview"));
        let (status, content_type, apps) = get("/apps.js").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/javascript"));
        assert!(apps.contains("v1/counts/series"));
        assert!(page.contains(r#"<script src="apps.js">"#));
    }

    #[tokio::test]
    async fn the_api_answers_the_overview_and_one_stream_and_404_names_what_is_missing() {
        let (status, _, body) = get("/api/overview").await;
        assert_eq!(status, StatusCode::OK);
        let overview: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(overview["streams"][0]["name"], "shop");
        assert_eq!(overview["streams"][0]["health"], "progressing");

        let (status, _, body) = get("/api/streams/demo/shop").await;
        assert_eq!(status, StatusCode::OK);
        let detail: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(detail["graph"]["apps"].as_array().unwrap().len(), 3);

        let (status, content_type, body) = get("/api/streams/demo/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type, "application/problem+json");
        assert!(body.contains("no Stream demo/nope"), "{body}");
    }
}
