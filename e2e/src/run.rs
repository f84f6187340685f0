//! A load run of the example system with something done to it meanwhile
//! (kills, a suspension, a rollback): the load simulator's run, then the
//! system left to settle, then what it holds of the run gathered for
//! [`crate::invariants`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use crate::broker::{BROKER, broker_queues};
use crate::feeds::{CONTEXTS, feed_end, feed_events, web_base};
use crate::forward::forward_service;
use crate::http::get_json;
use crate::invariants::Facts;
use crate::load::{await_load, start_load};
use crate::pods::is_ready;

/// A load run to make.
pub struct LoadRun {
    /// Namespace of the example system (a copy, or the examples' own).
    pub namespace: String,
    /// The load-simulator plan (`POST /v1/runs`).
    pub plan: Value,
    /// How long the load may run at most.
    pub load_timeout: Duration,
    /// How long the system may take to settle after the load.
    pub settle_timeout: Duration,
}

/// Runs the load of `run` while `during` acts on the system (given a flag
/// set once the load is over, and when the load began), waits for the
/// system to settle, and gathers what it holds of the run with what
/// `during` returned. `Facts::kills` is left empty for the caller.
pub async fn load_run<T, F, Fut>(client: &Client, run: &LoadRun, during: F) -> Result<(Facts, T)>
where
    F: FnOnce(Arc<AtomicBool>, Instant) -> Fut,
    Fut: Future<Output = T>,
{
    let ns = run.namespace.as_str();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut starts = BTreeMap::new();
    for app in CONTEXTS {
        let base = web_base(client, ns, app).await?;
        starts.insert(app.to_owned(), feed_end(&http, &base).await?);
    }
    let sim = forward_service(client, ns, "load-simulator-web", 8080).await?;
    println!("  plan: {}", run.plan);
    let url = start_load(&http, &sim, &run.plan).await?;
    println!("  run {url}");
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let load = async {
        let report = await_load(&http, &url, run.load_timeout).await;
        done.store(true, Ordering::SeqCst);
        report
    };
    let (report, acted) = tokio::join!(load, during(done.clone(), started));
    let report = report?;
    let load_seconds = started.elapsed().as_secs_f64();
    println!(
        "  load {} after {load_seconds:.1} s; settling (at most {:?})",
        report["status"].as_str().unwrap_or("?"),
        run.settle_timeout
    );
    let acknowledged = match get_json(&http, &format!("{url}/orders")).await {
        Ok(doc) => serde_json::from_value(doc["acknowledged"].clone()).ok(),
        Err(e) => {
            println!("  (no acknowledged order ids from the simulator: {e:#})");
            None
        }
    };
    let settled = settle(client, &http, ns, run.settle_timeout).await;
    match &settled {
        Ok(secs) => println!("  settled {secs:.1} s after the load"),
        Err(e) => println!("  not settled: {e:#}"),
    }
    let mut feeds = BTreeMap::new();
    for app in CONTEXTS {
        let base = web_base(client, ns, app).await?;
        let events = feed_events(&http, &base, starts[app]).await?;
        feeds.insert(app.to_owned(), events);
    }
    let warehouse = report["warehouseId"].as_str().unwrap_or_default();
    let base = web_base(client, ns, "warehouse").await?;
    let inventory = get_json(
        &http,
        &format!("{base}/v1/warehouses/{warehouse}/inventory"),
    )
    .await?;
    let queues = broker_queues(client, &http, ns, BROKER).await?;
    let facts = Facts {
        namespace: ns.to_owned(),
        report,
        acknowledged,
        feeds,
        inventory,
        queues,
        kills: Vec::new(),
        load_seconds,
        settled: settled.is_ok(),
    };
    Ok((facts, acted))
}

/// Waits until the system is quiet: every pod of the namespace Ready, no
/// message left on any queue but the dead-letter ones, and no event
/// appended to any feed for 15 s. Returns the seconds it took.
pub async fn settle(
    client: &Client,
    http: &reqwest::Client,
    ns: &str,
    timeout: Duration,
) -> Result<f64> {
    let started = Instant::now();
    let mut last: Option<(Vec<i64>, Instant)> = None;
    let mut why = String::new();
    while started.elapsed() < timeout {
        match quiet_state(client, http, ns).await {
            Ok(Ok(ends)) => match &last {
                Some((seen, since)) if *seen == ends => {
                    if since.elapsed() >= Duration::from_secs(15) {
                        return Ok(started.elapsed().as_secs_f64());
                    }
                }
                _ => last = Some((ends, Instant::now())),
            },
            Ok(Err(busy)) => {
                why = busy;
                last = None;
            }
            Err(e) => {
                why = format!("{e:#}");
                last = None;
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Err(anyhow!("still busy after {timeout:?}: {why}"))
}

/// The feeds' ends when every pod is Ready and only dead-letter queues hold
/// messages; otherwise what is still busy.
async fn quiet_state(
    client: &Client,
    http: &reqwest::Client,
    ns: &str,
) -> Result<std::result::Result<Vec<i64>, String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let unready: Vec<String> = pods
        .items
        .iter()
        .filter(|p| !is_ready(p))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    if !unready.is_empty() {
        return Ok(Err(format!("pods not Ready: {unready:?}")));
    }
    let queues = broker_queues(client, http, ns, BROKER).await?;
    let busy: Vec<String> = queues
        .iter()
        .filter(|(q, n)| **n > 0 && !q.ends_with(".dlq"))
        .map(|(q, n)| format!("{q} {n}"))
        .collect();
    if !busy.is_empty() {
        return Ok(Err(format!("messages on queues: {busy:?}")));
    }
    let mut ends = Vec::new();
    for app in CONTEXTS {
        let base = web_base(client, ns, app).await?;
        ends.push(feed_end(http, &base).await?);
    }
    Ok(Ok(ends))
}
