//! The web role's HTTP surface: the app's routes plus the feed and the
//! OpenAPI document, every request counted and logged by route template,
//! every error as problem+json.

use axum::{Router, response::IntoResponse, routing::get};

use super::AppSpec;
use crate::{
    metrics::Metrics,
    problem::normalize_errors,
    web::{self, WebContext},
};

/// The web role's router: the aggregates, the feed, the OpenAPI document,
/// problem+json for every error.
pub fn web_router(spec: &AppSpec, ctx: WebContext) -> Router {
    let openapi = (spec.openapi)();
    (spec.routes)()
        .merge(web::feed_routes(spec.collection_of))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi.clone()).into_response() }),
        )
        // After routing, so the route template is known.
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.metrics.clone(),
            observe_request,
        ))
        .fallback(
            |axum::extract::State(ctx): axum::extract::State<WebContext>| async move {
                let unmatched = crate::metrics::HttpRequest {
                    route: "unmatched".into(),
                    status: "4xx",
                };
                ctx.metrics.http_requests.get_or_create(&unmatched).inc();
                web::not_found().await
            },
        )
        .layer(axum::middleware::map_response(normalize_errors))
        .with_state(ctx)
}

/// Counts every request by route template and status class, and logs it
/// (server errors at `error`, the rest at `debug`).
async fn observe_request(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unknown".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let class = match status.as_u16() {
        500.. => "5xx",
        400..=499 => "4xx",
        300..=399 => "3xx",
        _ => "2xx",
    };
    let millis = start.elapsed().as_secs_f64() * 1e3;
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), millis, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), millis, "request");
    }
    metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpRequest {
            route,
            status: class,
        })
        .inc();
    response
}
