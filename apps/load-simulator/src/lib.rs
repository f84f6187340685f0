//! The load simulator (DOMAIN.md, "Load simulator and counters"): a web-role
//! app whose HTTP API starts and stops runs ([`simulate`]) that create
//! accounts, stock inventory and post orders at a planned rate ([`plan`]) —
//! a planned share of them designed to fail — and reports what each run did
//! ([`report`]): counts, outcomes, orders per second and p50/p99 latency
//! from post to final state. It replaces the original's `time | load-simulator`.

pub mod feed;
pub mod plan;
pub mod report;
pub mod serve;
pub mod simulate;

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use eventflow_runtime::{
    hal::{HAL_JSON, base_url},
    problem::{JsonBody, Problem, normalize_errors},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{plan::Plan, report::Report, simulate::Targets};

pub const APP: &str = "load-simulator";
/// Runs kept for reporting; the oldest finished ones are forgotten first.
pub const MAX_RUNS: usize = 100;

struct Run {
    report: Arc<Report>,
    cancel: CancellationToken,
}

/// The runs of this process and the web roles they drive.
#[derive(Clone)]
pub struct Simulator {
    runs: Arc<Mutex<Vec<Run>>>,
    targets: Targets,
}

impl Simulator {
    pub fn new(targets: Targets) -> Self {
        Self {
            runs: Arc::default(),
            targets,
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, Vec<Run>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops every run (on shutdown).
    pub fn stop_all(&self) {
        for run in self.runs().iter() {
            run.cancel.cancel();
        }
    }
}

fn hal(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, HAL_JSON)], body.to_string()).into_response()
}

async fn start(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    JsonBody(plan): JsonBody<Plan>,
) -> Result<Response, Problem> {
    plan.validate()?;
    if sim.targets.order.is_none() || sim.targets.warehouse.is_none() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "EVENTFLOW_PEER_ORDER_URL and EVENTFLOW_PEER_WAREHOUSE_URL must be set to run load",
        ));
    }
    let report = Arc::new(Report::new(uuid::Uuid::new_v4().to_string(), plan));
    let cancel = CancellationToken::new();
    {
        let mut runs = sim.runs();
        if runs.len() >= MAX_RUNS {
            match runs
                .iter()
                .position(|r| r.report.status() != report::RunStatus::Running)
            {
                Some(oldest) => {
                    runs.remove(oldest);
                }
                None => {
                    return Err(Problem::conflict(format!(
                        "{MAX_RUNS} runs are running: stop one first"
                    )));
                }
            }
        }
        runs.push(Run {
            report: report.clone(),
            cancel: cancel.clone(),
        });
    }
    tokio::spawn(simulate::simulate(
        report.clone(),
        sim.targets.clone(),
        cancel,
    ));
    let base = base_url(&headers);
    let body = report.to_json(&base);
    let mut response = hal(StatusCode::CREATED, body);
    if let Ok(location) = header::HeaderValue::from_str(&format!("{base}/v1/runs/{}", report.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn list(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let runs: Vec<Value> = sim.runs().iter().map(|r| r.report.to_json(&base)).collect();
    hal(
        StatusCode::OK,
        json!({ "_embedded": { "runs": runs }, "_links": { "self": { "href": format!("{base}/v1/runs") } } }),
    )
}

fn find(sim: &Simulator, id: &str) -> Result<(Arc<Report>, CancellationToken), Problem> {
    sim.runs()
        .iter()
        .find(|r| r.report.id == id)
        .map(|r| (r.report.clone(), r.cancel.clone()))
        .ok_or_else(|| Problem::not_found(format!("no run {id}")))
}

async fn one(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (report, _) = find(&sim, &id)?;
    Ok(hal(StatusCode::OK, report.to_json(&base_url(&headers))))
}

async fn orders(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (report, _) = find(&sim, &id)?;
    Ok(hal(StatusCode::OK, report.orders_json(&base_url(&headers))))
}

async fn stop(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (report, cancel) = find(&sim, &id)?;
    if report.status() != report::RunStatus::Running {
        return Err(Problem::conflict(format!("run {id} is not running")));
    }
    cancel.cancel();
    report.finish(report::RunStatus::Stopped);
    Ok(hal(StatusCode::OK, report.to_json(&base_url(&headers))))
}

async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}

/// `POST /v1/runs` (start), `GET /v1/runs`, `GET /v1/runs/{id}` (report),
/// `GET /v1/runs/{id}/orders` (the acknowledged order ids),
/// `POST /v1/runs/{id}/commands/stop`.
pub fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/v1/runs", post(start).get(list))
        .route("/v1/runs/{id}", get(one))
        .route("/v1/runs/{id}/orders", get(orders))
        .route("/v1/runs/{id}/commands/stop", post(stop))
        .fallback(not_found)
        .layer(axum::middleware::map_response(normalize_errors))
        .with_state(sim)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "sim.test")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn a_plan_out_of_range_is_refused_naming_the_field() {
        let app = router(Simulator::new(Targets::default()));
        let (status, body) = call(&app, "POST", "/v1/runs", r#"{"failureShare": 2}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "failureShare");
        let (status, body) = call(&app, "POST", "/v1/runs", r#"{"ordres": 2}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn without_the_web_roles_to_drive_a_run_cannot_start() {
        let app = router(Simulator::new(Targets::default()));
        let (status, body) = call(&app, "POST", "/v1/runs", "{}").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("EVENTFLOW_PEER_ORDER_URL")
        );
        let (status, _) = call(&app, "GET", "/v1/runs/nope", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = call(&app, "GET", "/v1/runs", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["_embedded"]["runs"], json!([]));
    }
}
