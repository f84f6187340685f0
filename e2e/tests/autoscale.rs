//! A burst into an autoscaled worker on the real node: the example
//! system's account worker, first at a fixed single replica (the baseline),
//! then with `autoscale: {minReplicas: 0, maxReplicas: 4,
//! backlogPerReplica: 50}`. Each burst creates 500 accounts at once through
//! the account web role; the account worker gets their 2,000 events (created,
//! pending, confirmed, activated) and makes every account ACTIVE. The
//! autoscaled worker starts at zero, wakes, scales up and returns to zero;
//! every account ends ACTIVE with each event once in the account feed and
//! nothing dead-lettered. The figures — time to first scale-up, peak
//! replicas, time to drain, the replica timeline — are printed beside the
//! baseline's.
//!
//! The shared example system is changed for the run and restored after.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use eventflow_e2e::*;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use serde_json::json;

const ACCOUNTS: usize = 500;
const WORKER: &str = "ecommerce-account-worker";
const DLQ: &str = "eventflow-demo.account.account.dlq";
const EVENT_TYPES: [&str; 4] = [
    "ACCOUNT_CREATED",
    "ACCOUNT_PENDING",
    "ACCOUNT_CONFIRMED",
    "ACCOUNT_ACTIVATED",
];

/// What one burst showed.
#[derive(Debug, Default)]
struct Burst {
    posted_in: Duration,
    first_scale_up: Option<Duration>,
    peak: i32,
    drained: Duration,
    back_to_zero: Option<Duration>,
    /// `(seconds since the first POST, replicas)` at every change.
    timeline: Vec<(f64, i32)>,
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
async fn burst(client: &Client, tag: &str, to_zero: bool) -> Result<Burst> {
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

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

fn timeline(b: &Burst) -> String {
    b.timeline
        .iter()
        .map(|(t, n)| format!("{n}@{t:.1}s"))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn await_replicas(client: &Client, n: i32, timeout: Duration) -> Result<()> {
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

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_burst_into_an_autoscaled_worker_wakes_it_scales_it_up_and_back_to_zero_every_event_once()
{
    let client = Client::try_default().await.unwrap();
    example_system();
    let run = std::process::id();

    // Baseline: the example's single fixed replica.
    let fixed = burst(&client, &format!("fixed{run}"), false).await.unwrap();

    // Autoscaled from zero.
    patch_example_stream(
        "ecommerce",
        &json!([{"op": "add", "path": "/spec/apps/0/worker/autoscale", "value":
            {"minReplicas": 0, "maxReplicas": 4, "backlogPerReplica": 50,
             "scaleDown": {"windowSeconds": 15}}}]),
    )
    .unwrap();
    await_replicas(&client, 0, Duration::from_secs(120))
        .await
        .unwrap();
    let scaled = burst(&client, &format!("scaled{run}"), true).await;

    // Restored whatever happened (the example's fixed replica).
    patch_example_stream(
        "ecommerce",
        &json!([{"op": "remove", "path": "/spec/apps/0/worker/autoscale"}]),
    )
    .unwrap();
    await_replicas(&client, 1, Duration::from_secs(120))
        .await
        .unwrap();
    let scaled = scaled.unwrap();

    println!(
        "\n== a burst of {ACCOUNTS} accounts ({} events into the account worker)",
        4 * ACCOUNTS
    );
    println!("| | fixed 1 replica | autoscaled 0..4, 50/replica |");
    println!("|---|---|---|");
    println!(
        "| POSTs answered in | {} | {} |",
        secs(Some(fixed.posted_in)),
        secs(Some(scaled.posted_in))
    );
    println!(
        "| first scale-up after | - | {} |",
        secs(scaled.first_scale_up)
    );
    println!("| peak replicas | {} | {} |", fixed.peak, scaled.peak);
    println!(
        "| every account ACTIVE after | {} | {} |",
        secs(Some(fixed.drained)),
        secs(Some(scaled.drained))
    );
    println!("| back to zero after | - | {} |", secs(scaled.back_to_zero));
    println!(
        "| drain ratio autoscaled / fixed | {:.2} | |",
        scaled.drained.as_secs_f64() / fixed.drained.as_secs_f64()
    );
    println!("replicas (autoscaled): {}", timeline(&scaled));

    assert_eq!(scaled.timeline[0].1, 0, "the burst began at zero");
    assert!(scaled.peak >= 2, "scaled up: {}", timeline(&scaled));
    assert!(scaled.back_to_zero.is_some(), "{}", timeline(&scaled));
}
