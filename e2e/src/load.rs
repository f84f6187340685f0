//! Runs of the load simulator: started over its API and polled until done.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use crate::{
    forward::forward_service,
    http::{get_json, run_base},
    install::EXAMPLES_NS,
};

/// Starts a load-simulator run (`POST {sim}/v1/runs` with `plan`) and polls
/// it until it is no longer RUNNING; returns its last report. Fails when the
/// run is refused or still RUNNING after `timeout`.
pub async fn run_load(
    http: &reqwest::Client,
    sim: &str,
    plan: &Value,
    timeout: Duration,
) -> Result<Value> {
    let url = start_load(http, sim, plan).await?;
    await_load(http, &url, timeout).await
}

/// Starts a load-simulator run (`POST {sim}/v1/runs` with `plan`); returns
/// the URL of its report, reached through `sim`.
pub async fn start_load(http: &reqwest::Client, sim: &str, plan: &Value) -> Result<String> {
    let started = http
        .post(format!("{sim}/v1/runs"))
        .json(plan)
        .send()
        .await?;
    if started.status() != 201 {
        bail!(
            "POST {sim}/v1/runs: {}: {}",
            started.status(),
            started.text().await.unwrap_or_default()
        );
    }
    let run: Value = started.json().await?;
    Ok(run["_links"]["self"]["href"]
        .as_str()
        .ok_or_else(|| anyhow!("the run has no self link: {run}"))?
        .replace(run_base(&run).as_str(), sim))
}

/// Polls the run report at `url` every second until the run is no longer
/// RUNNING; returns that report. A failed poll is tried again until
/// `timeout`, then fails with the last error.
pub async fn await_load(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match get_json(http, url).await {
            Ok(report) if report["status"] != "RUNNING" => return Ok(report),
            Ok(report) => anyhow!("the run did not complete in {timeout:?}: {report}"),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A run of `orders` orders through the example system's load simulator
/// (a quarter designed to fail, ample stock), reached by a port-forward;
/// returns its last report.
pub async fn run_example_orders(
    client: &kube::Client,
    http: &reqwest::Client,
    orders: u32,
) -> Result<Value> {
    let sim = forward_service(client, EXAMPLES_NS, "load-simulator-web", 8080).await?;
    let plan = serde_json::json!({"orders": orders, "ratePerSecond": 5, "failureShare": 0.25,
                                  "accounts": 2, "products": 2, "stockPerProduct": 100,
                                  "followSeconds": 240});
    // The simulator itself retries a POST that found no route (a Service of
    // a system that just became Ready), so every request must succeed.
    run_load(http, &sim, &plan, Duration::from_secs(300)).await
}
