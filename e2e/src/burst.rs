//! A burst into the example system's account worker, the way a user
//! sees it: [`ACCOUNTS`] accounts created at once through the account web
//! role, so the account worker gets their 2,000 events (created, pending,
//! confirmed, activated) and makes every account ACTIVE. What the worker's
//! replicas did meanwhile, and whether each event is in the account feed
//! exactly once with nothing dead-lettered. Used by `e2e/tests/autoscale.rs`
//! (autoscaled from zero) and `e2e-burst` (`make measure-burst`: a fixed
//! single replica beside it).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::{EXAMPLES_NS, broker_queues, feed_end, feed_events, patch_example_stream, web_base};

pub const ACCOUNTS: usize = 500;
pub const WORKER: &str = "ecommerce-account-worker";
const DLQ: &str = "eventflow-demo.account.account.dlq";
const EVENT_TYPES: [&str; 4] = [
    "ACCOUNT_CREATED",
    "ACCOUNT_PENDING",
    "ACCOUNT_CONFIRMED",
    "ACCOUNT_ACTIVATED",
];

/// What one burst showed.
#[derive(Debug, Default)]
pub struct Burst {
    pub posted_in: Duration,
    pub first_scale_up: Option<Duration>,
    pub peak: i32,
    pub drained: Duration,
    pub back_to_zero: Option<Duration>,
    /// `(seconds since the first POST, replicas)` at every change.
    pub timeline: Vec<(f64, i32)>,
}

async fn replicas(deployments: &Api<Deployment>) -> Result<i32> {
    Ok(deployments
        .get(WORKER)
        .await?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(1))
}

/// Events of the accounts of this burst (created with `tag` as their last
/// name) in the account feed after `after`, by event type, with the number
/// of duplicated event ids.
async fn account_events(
    http: &reqwest::Client,
    base: &str,
    after: i64,
    tag: &str,
) -> Result<(BTreeMap<String, usize>, usize)> {
    let events = feed_events(http, base, after).await?;
    let ours: HashSet<String> = events
        .iter()
        .filter(|e| e["eventType"] == "ACCOUNT_CREATED" && e.to_string().contains(tag))
        .map(|e| e["aggregateId"].to_string())
        .collect();
    let mut counts = BTreeMap::new();
    let mut ids = HashSet::new();
    let mut duplicates = 0;
    for e in events
        .iter()
        .filter(|e| ours.contains(&e["aggregateId"].to_string()))
    {
        if !ids.insert(e["eventId"].to_string()) {
            duplicates += 1;
        }
        let t = e["eventType"].as_str().unwrap_or_default().to_owned();
        *counts.entry(t).or_insert(0) += 1;
    }
    Ok((counts, duplicates))
}

/// Creates [`ACCOUNTS`] accounts at once (32 requests in flight), watching
/// the worker's replicas until every account is ACTIVE and, when
/// `to_zero`, the worker is back at zero.
pub async fn burst(client: &Client, tag: &str, to_zero: bool) -> Result<Burst> {
    let http = reqwest::Client::new();
    let base = web_base(client, EXAMPLES_NS, "account").await?;
    let start_position = feed_end(&http, &base).await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), EXAMPLES_NS);
    let mut b = Burst::default();
    let t0 = Instant::now();
    let initial = replicas(&deployments).await?;
    b.timeline.push((0.0, initial));
    let posting = {
        let http = http.clone();
        let base = base.clone();
        let tag = tag.to_owned();
        tokio::spawn(async move {
            let results: Vec<Result<()>> = stream::iter(0..ACCOUNTS)
                .map(|i| {
                    let (http, base, tag) = (http.clone(), base.clone(), tag.clone());
                    async move {
                        let r = http
                            .post(format!("{base}/v1/accounts"))
                            .json(&json!({"firstName": "Burst", "lastName": tag,
                                          "email": format!("burst-{tag}-{i}@example.com")}))
                            .send()
                            .await?;
                        ensure!(r.status().is_success(), "POST account {i}: {}", r.status());
                        Ok(())
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
        })
    };
    let deadline = t0 + Duration::from_secs(600);
    let mut posted = false;
    let mut activated = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "the burst {tag} did not settle in 600 s: {activated}/{ACCOUNTS} active, timeline {:?}",
            b.timeline
        );
        if !posted && posting.is_finished() {
            b.posted_in = t0.elapsed();
            posted = true;
        }
        let r = replicas(&deployments).await?;
        if b.timeline.last().map(|(_, n)| *n) != Some(r) {
            b.timeline.push((t0.elapsed().as_secs_f64(), r));
        }
        if r > initial && b.first_scale_up.is_none() {
            b.first_scale_up = Some(t0.elapsed());
        }
        b.peak = b.peak.max(r);
        if b.drained.is_zero() {
            let (counts, _) = account_events(&http, &base, start_position, tag).await?;
            activated = counts.get("ACCOUNT_ACTIVATED").copied().unwrap_or(0);
            if posted && activated >= ACCOUNTS {
                b.drained = t0.elapsed();
            }
        }
        if !b.drained.is_zero() && (!to_zero || r == 0) {
            if to_zero {
                b.back_to_zero = Some(t0.elapsed());
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    posting.await.map_err(|e| anyhow!("{e}"))??;

    // Each event once: 500 of each type, no id twice, nothing dead-lettered.
    let (counts, duplicates) = account_events(&http, &base, start_position, tag).await?;
    for t in EVENT_TYPES {
        ensure!(
            counts.get(t).copied().unwrap_or(0) == ACCOUNTS,
            "burst {tag}: {t} {} times, not {ACCOUNTS}: {counts:?}",
            counts.get(t).copied().unwrap_or(0)
        );
    }
    ensure!(
        duplicates == 0,
        "burst {tag}: {duplicates} duplicated event ids"
    );
    let queues = broker_queues(client, &http, EXAMPLES_NS, "rabbit").await?;
    ensure!(
        queues.get(DLQ).copied().unwrap_or(0) == 0,
        "burst {tag}: the account DLQ holds {:?}",
        queues.get(DLQ)
    );
    Ok(b)
}

pub fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

pub fn timeline(b: &Burst) -> String {
    b.timeline
        .iter()
        .map(|(t, n)| format!("{n}@{t:.1}s"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn await_replicas(client: &Client, n: i32, timeout: Duration) -> Result<()> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), EXAMPLES_NS);
    let deadline = Instant::now() + timeout;
    loop {
        if replicas(&deployments).await? == n {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{WORKER} did not reach {n} replicas in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The autoscale the burst tests and measures: from zero to 4 replicas at
/// 50 messages each, down after 15 s.
pub fn autoscale() -> Value {
    json!({"minReplicas": 0, "maxReplicas": 4, "backlogPerReplica": 50,
           "scaleDown": {"windowSeconds": 15}})
}

/// Sets (`Some`) or removes (`None`) the account worker's autoscale.
pub fn set_autoscale(autoscale: Option<Value>) -> Result<String> {
    let op = match autoscale {
        Some(value) => {
            json!([{"op": "add", "path": "/spec/apps/0/worker/autoscale", "value": value}])
        }
        None => json!([{"op": "remove", "path": "/spec/apps/0/worker/autoscale"}]),
    };
    patch_example_stream("ecommerce", &op)
}
