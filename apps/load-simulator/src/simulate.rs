//! One run: create accounts, a warehouse and its stock, then post orders at
//! the planned rate against the web roles found through the peer URLs, and
//! follow each order to its final state. Stopping cancels what is left.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    feed::{self, Pending},
    report::{Report, RunStatus},
};

/// The web roles a run drives (`EVENTFLOW_PEER_<APP>_URL`).
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub order: Option<String>,
    pub warehouse: Option<String>,
    /// Optional: without it, orders carry made-up account ids.
    pub account: Option<String>,
}

impl Targets {
    pub fn from_env() -> Self {
        let peer = |app: &str| eventflow_runtime::hypermedia::peer_url(app).ok();
        Self {
            order: peer("order"),
            warehouse: peer("warehouse"),
            account: peer("account"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{method} {url}: {status}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
    },
    #[error("{0} has no {1:?} link")]
    Link(String, &'static str),
    #[error("{0} is not set: the run needs that web role")]
    MissingPeer(&'static str),
}

impl SimulationError {
    /// True when the request got no answer at all (no connection, a
    /// timeout, a reset, an unreadable body): whether the app applied it
    /// is unknown. An answer with an error status is a refusal.
    pub fn unanswered(&self) -> bool {
        matches!(self, Self::Http(_))
    }
}

const STOCK_CHUNK: u32 = 1_000;

/// What the ids of a run's products start with (`sim-<first 8 of the run id>-p`):
/// how the run's orders are told apart in the order context.
pub fn product_prefix(run_id: &str) -> String {
    format!("sim-{}-p", &run_id[..8.min(run_id.len())])
}

/// Tries of one POST before it counts as a request error.
const POST_ATTEMPTS: u32 = 6;

/// Whether a POST outcome is worth another try: no connection (a Service
/// still being routed, a web pod replaced), a timeout, or a gateway or
/// overload answer. Anything the app decided (4xx, 500) is final.
fn transient(outcome: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match outcome {
        Err(e) => e.is_connect() || e.is_timeout() || e.is_request(),
        Ok(r) => matches!(r.status().as_u16(), 429 | 502 | 503 | 504),
    }
}

/// POSTs `body`, retrying transient failures with back-off (0.2 s doubling).
/// Every try carries the same `Idempotency-Key`, so a try that reached the
/// app before its answer was lost is applied once: the app answers a repeat
/// with the first result.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, SimulationError> {
    let key = uuid::Uuid::new_v4().to_string();
    let mut delay = std::time::Duration::from_millis(200);
    let mut attempt = 1;
    let r = loop {
        let outcome = http
            .post(url)
            .header("Idempotency-Key", &key)
            .json(body)
            .send()
            .await;
        if attempt >= POST_ATTEMPTS || !transient(&outcome) {
            break outcome?;
        }
        tracing::debug!(url, attempt, "POST failed transiently; trying again");
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    };
    if !r.status().is_success() {
        return Err(SimulationError::Status {
            method: "POST",
            url: url.to_owned(),
            status: r.status().as_u16(),
        });
    }
    Ok(r.json().await?)
}

fn href(doc: &Value, rel: &'static str) -> Result<String, SimulationError> {
    doc["_links"][rel]["href"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| SimulationError::Link(doc["_links"]["self"]["href"].to_string(), rel))
}

/// Creates the accounts, the warehouse and its stock; returns `(accounts, products)`.
async fn prepare(
    http: &reqwest::Client,
    report: &Report,
    targets: &Targets,
) -> Result<(Vec<String>, Vec<String>), SimulationError> {
    let plan = &report.plan;
    let short = &report.id[..8.min(report.id.len())];
    let mut accounts = Vec::new();
    for i in 0..plan.accounts.max(1) {
        let id = match &targets.account {
            Some(base) if plan.accounts > 0 => {
                let body = json!({ "firstName": "Load", "lastName": format!("Simulator {i}"),
                                   "email": format!("sim-{short}-{i}@example.com") });
                let a = post(http, &format!("{base}/v1/accounts"), &body).await?;
                report.account_created();
                a["accountId"].as_str().unwrap_or_default().to_owned()
            }
            _ => format!("sim-{short}-{i}"),
        };
        accounts.push(id);
    }
    let warehouse_url = targets
        .warehouse
        .as_ref()
        .ok_or(SimulationError::MissingPeer("EVENTFLOW_PEER_WAREHOUSE_URL"))?;
    let warehouse = post(
        http,
        &format!("{warehouse_url}/v1/warehouses"),
        &json!({ "address": format!("load run {}", report.id) }),
    )
    .await?;
    let inventory = href(&warehouse, "inventory")?;
    let warehouse_id = warehouse["warehouseId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut products = Vec::new();
    for p in 0..plan.products {
        let product = format!("{}{p}", product_prefix(&report.id));
        let mut left = plan.stock_per_product;
        while left > 0 {
            let n = left.min(STOCK_CHUNK);
            post(
                http,
                &inventory,
                &json!({ "productId": product, "quantity": n }),
            )
            .await?;
            report.stocked(&warehouse_id, u64::from(n));
            left -= n;
        }
        products.push(product);
    }
    Ok((accounts, products))
}

/// Runs the plan to the end (or until `cancel`), recording into `report`.
pub async fn simulate(report: Arc<Report>, targets: Targets, cancel: CancellationToken) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap_or_default();
    let Some(order_base) = targets.order.clone() else {
        report.request_error(SimulationError::MissingPeer("EVENTFLOW_PEER_ORDER_URL").to_string());
        return report.finish(RunStatus::Failed);
    };
    let (accounts, products) = match prepare(&http, &report, &targets).await {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::warn!(error = %e, run = %report.id, "cannot prepare the run");
            report.request_error(e.to_string());
            return report.finish(RunStatus::Failed);
        }
    };
    let plan = report.plan.clone();
    let Some(after) = feed::end_position(&http, &order_base).await else {
        report.request_error(format!("cannot read {order_base}/v1/events"));
        return report.finish(RunStatus::Failed);
    };
    let pending = Pending::default();
    let posting_done = CancellationToken::new();
    let follower = tokio::spawn(feed::follow(
        http.clone(),
        order_base.clone(),
        after,
        report.clone(),
        pending.clone(),
        posting_done.clone(),
        cancel.clone(),
    ));
    let limit = Arc::new(Semaphore::new(plan.concurrency as usize));
    let tasks = TaskTracker::new();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / plan.rate_per_second);
    for i in 0..plan.orders {
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until((start + interval * i).into()) => {}
        }
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let fail = plan.designed_to_fail(i);
        let body = json!({
            "accountId": accounts[i as usize % accounts.len()],
            "lineItems": [{ "name": "simulated item", "productId": products[i as usize % products.len()],
                            "quantity": plan.units_per_order, "price": 9.5, "tax": 0.5 }],
            "shippingAddress": "1 Load Street",
            "paymentMethod": if fail { "DECLINED" } else { "CARD" },
        });
        let (http, report, pending, url) = (
            http.clone(),
            report.clone(),
            pending.clone(),
            format!("{order_base}/v1/orders"),
        );
        tasks.spawn(async move {
            let posted = Instant::now();
            let created = post(&http, &url, &body).await;
            drop(permit);
            match created {
                Ok(order) => match order["orderId"].as_str() {
                    Some(id) => {
                        report.order_acknowledged(id, fail);
                        pending.posted(&report, id.to_owned(), posted);
                    }
                    // Acknowledged, yet which order it made is unknown.
                    None => report.order_unanswered(format!("an answer without orderId: {order}")),
                },
                Err(e) if e.unanswered() => report.order_unanswered(e.to_string()),
                Err(e) => report.order_refused(e.to_string()),
            }
        });
    }
    tasks.close();
    tasks.wait().await;
    posting_done.cancel();
    let _ = follower.await;
    // What the order context holds of this run, read once posting and
    // following are over: the outcomes the report ends with.
    if !cancel.is_cancelled() {
        let prefix = product_prefix(&report.id);
        match feed::read_context(&http, &order_base, after, &report.acknowledged(), &prefix).await {
            Some(context) => report.order_context(context),
            None => report.request_error(format!("cannot read {order_base}/v1/events to the end")),
        }
    }
    report.finish(if cancel.is_cancelled() {
        RunStatus::Stopped
    } else {
        RunStatus::Completed
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{Router, http::HeaderMap, http::StatusCode, routing::post as route_post};

    use super::*;

    /// A server answering `statuses` in turn (then 201), recording the
    /// Idempotency-Key of every request.
    async fn server(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        let keys = Arc::new(Mutex::new(Vec::new()));
        let seen = keys.clone();
        let app = Router::new().route(
            "/v1/things",
            route_post(move |headers: HeaderMap| {
                let seen = seen.clone();
                let statuses = statuses.clone();
                async move {
                    let mut keys = seen.lock().unwrap();
                    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                    keys.push(key);
                    let status = statuses.get(keys.len() - 1).copied().unwrap_or(201);
                    (
                        StatusCode::from_u16(status).unwrap(),
                        axum::Json(json!({"try": keys.len()})),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/v1/things"), keys)
    }

    #[tokio::test]
    async fn a_post_answered_503_is_tried_again_with_the_same_idempotency_key() {
        let (url, keys) = server(vec![503, 502]).await;
        let body = post(&reqwest::Client::new(), &url, &json!({}))
            .await
            .unwrap();
        assert_eq!(body["try"], 3);
        let keys = keys.lock().unwrap();
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    }

    #[tokio::test]
    async fn a_post_the_app_refused_is_not_tried_again() {
        let (url, keys) = server(vec![400]).await;
        let err = post(&reqwest::Client::new(), &url, &json!({}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("400"), "{err}");
        assert_eq!(keys.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_post_to_nobody_gives_up_naming_the_failure() {
        // A port held but never listened on: every try is refused.
        let nobody = eventflow_runtime::testing::ReservedPort::new();
        let url = format!("http://{}/v1/things", nobody.addr());
        let err = post(&reqwest::Client::new(), &url, &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, SimulationError::Http(_)), "{err}");
    }
}
