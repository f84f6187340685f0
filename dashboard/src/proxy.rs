//! `/api/streams/{ns}/{name}/apps/{app}/{path}`: the page's requests to a
//! Stream's counter or load simulator ([`crate::apps`]), passed to the
//! app's web role and its answer passed back. This is the dashboard's only
//! write, and it is a write to an app (starting or stopping a load run),
//! never to Kubernetes. A POST must carry JSON: a form on another site
//! cannot send that without a CORS preflight the dashboard never answers.

use std::time::Duration;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};

use crate::{apps, http::Source, problem::problem};

/// How long an app has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Largest answer passed back (a run's report, a day of counts).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// How the dashboard reaches apps.
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    resolve: apps::Resolve,
}

impl Upstream {
    /// Reaching each app at `resolve(stream, namespace, app)`.
    pub fn new(resolve: apps::Resolve) -> Self {
        let client = reqwest::Client::builder()
            .timeout(ANSWER_WITHIN)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Upstream { client, resolve }
    }
}

pub fn routes<S: Source>(source: S, upstream: Upstream) -> Router {
    Router::new()
        .route(
            "/api/streams/{namespace}/{name}/apps/{app}/{*path}",
            any(pass::<S>),
        )
        .with_state((source, upstream))
}

async fn pass<S: Source>(
    State((source, upstream)): State<(S, Upstream)>,
    method: Method,
    Path((namespace, name, app, path)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let snapshot = source.snapshot();
    let Some(stream) = snapshot.streams.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace.as_str())
            && s.metadata.name.as_deref() == Some(name.as_str())
    }) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!("no Stream {namespace}/{name}"),
        );
    };
    let Some((found, kind)) = apps::find(stream, &app) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!(
                "Stream {namespace}/{name} has no app {app:?} the dashboard talks to (a counter or a load simulator with a web role)"
            ),
        );
    };
    if !kind.allows(&method, &path) {
        return problem(
            StatusCode::NOT_FOUND,
            format!("the dashboard does not pass {method} /{path} to {app} ({kind:?})"),
        );
    }
    if method == Method::POST && !is_json(&headers) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a POST must have Content-Type: application/json",
        );
    }
    let Some(base) = (upstream.resolve)(&name, &namespace, found) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!("{app} of {namespace}/{name} has no web role"),
        );
    };
    let mut url = format!("{base}/{}", path.trim_start_matches('/'));
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(&q);
    }
    let mut request = upstream.client.request(method.clone(), &url);
    if method == Method::POST {
        request = request
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let unreachable = |e: &dyn std::fmt::Display| {
        problem(
            StatusCode::BAD_GATEWAY,
            format!("{app} of {namespace}/{name} did not answer {method} /{path}: {e}"),
        )
    };
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return unreachable(&e),
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return unreachable(&"its answer is too large");
    }
    let body = match answer.bytes().await {
        Ok(b) if b.len() <= MAX_ANSWER => b,
        Ok(_) => return unreachable(&"its answer is too large"),
        Err(e) => return unreachable(&e),
    };
    let mut response = (status, body).into_response();
    if let Some(t) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, t);
    }
    response
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests;
