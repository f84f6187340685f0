//! Measures the saga on this machine and prints the figures (no
//! assertions): orders per second end to end (post -> ORDER_SUCCEEDED or
//! ORDER_FAILED) and p50/p99 latency with PostgreSQL, the share of failed
//! orders, and the peak RSS of every role under that load. order, payment
//! and warehouse each run a web role and two worker processes; the load
//! simulator drives them and measures (its report is the source of the
//! throughput and latency figures).
//!
//! ```text
//! eval "$(e2e/cluster/services.sh env)"
//! cargo build --release -p eventflow-order -p eventflow-payment -p eventflow-warehouse \
//!     -p eventflow-load-simulator --bins --example saga-bench
//! $CARGO_TARGET_DIR/release/examples/saga-bench [orders=500] [rate=100] [failure-share=0.1]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, declare::declare};
use eventflow_runtime::testing::{AppProcess, amqp_uri, fresh_postgres, unique_namespace};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};

fn binary(name: &str) -> String {
    // target/<profile>/examples/saga-bench -> target/<profile>/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (see the module docs)",
        path.display()
    );
    path.display().to_string()
}

fn subscription(app: &str) -> eventflow_contract::bindings::SubscriptionRequest<'static> {
    match app {
        "order" => eventflow_order::subscription(),
        "payment" => eventflow_payment::subscription(),
        _ => eventflow_warehouse::subscription(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let orders: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let rate: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100.0);
    let failure_share: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0.1);
    let namespace = unique_namespace();
    let connection = Connection::connect(&amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();

    let mut processes: Vec<(String, AppProcess)> = Vec::new();
    let mut envs = BTreeMap::new();
    for app in ["order", "payment", "warehouse"] {
        let bindings = Bindings::standalone(&namespace, &[app], &[subscription(app)]);
        declare(&channel, &Topology::of(&bindings), false)
            .await
            .unwrap();
        envs.insert(
            app,
            vec![
                ("EVENTFLOW_BROKER_URI", amqp_uri()),
                ("EVENTFLOW_BINDINGS", bindings.to_json()),
                ("DATABASE_URL", fresh_postgres().await),
                ("RUST_LOG", "warn".to_owned()),
            ],
        );
    }
    let mut peers = Vec::new();
    for app in ["order", "payment", "warehouse"] {
        let mut web = AppProcess::spawn(&binary(app), "web", &envs[app]);
        web.wait_ready(Duration::from_secs(30)).await;
        peers.push((
            match app {
                "order" => "EVENTFLOW_PEER_ORDER_URL",
                "payment" => "EVENTFLOW_PEER_PAYMENT_URL",
                _ => "EVENTFLOW_PEER_WAREHOUSE_URL",
            },
            web.http.clone(),
        ));
        processes.push((format!("{app} web"), web));
    }
    for app in ["order", "payment", "warehouse"] {
        let mut env = envs[app].clone();
        env.extend(peers.iter().cloned());
        for i in 0..2 {
            let mut w = AppProcess::spawn(&binary(app), "worker", &env);
            w.wait_ready(Duration::from_secs(30)).await;
            processes.push((format!("{app} worker {}", i + 1), w));
        }
    }
    let mut sim = AppProcess::spawn(&binary("load-simulator"), "web", &peers);
    sim.wait_ready(Duration::from_secs(30)).await;

    let idle: Vec<(String, u64)> = processes
        .iter()
        .map(|(n, p)| (n.clone(), p.rss_kib().unwrap_or(0)))
        .collect();
    // Enough stock for every order: failures are the designed ones only.
    let plan = json!({ "orders": orders, "ratePerSecond": rate, "failureShare": failure_share,
                       "accounts": 20, "products": 10, "stockPerProduct": orders / 10 + 10,
                       "concurrency": 128, "followSeconds": 600 });
    let http = reqwest::Client::new();
    let run: Value = http
        .post(format!("{}/v1/runs", sim.http))
        .json(&plan)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = run["_links"]["self"]["href"].as_str().unwrap().to_owned();
    let mut peak: BTreeMap<String, u64> = BTreeMap::new();
    let start = Instant::now();
    let report = loop {
        for (name, p) in &processes {
            let rss = p.rss_kib().unwrap_or(0);
            let e = peak.entry(name.clone()).or_default();
            *e = (*e).max(rss);
        }
        let r: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        if r["status"] != "RUNNING" {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "run did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    println!(
        "saga benchmark: {orders} orders offered at {rate}/s, {failure_share} designed to fail, PostgreSQL, 1 web + 2 workers per context"
    );
    println!("  status                 {}", report["status"]);
    println!(
        "  orders final           {} succeeded, {} failed, {} unresolved, {} request errors",
        report["outcomes"]["ORDER_SUCCEEDED"],
        report["outcomes"]["ORDER_FAILED"],
        report["outcomes"]["unresolved"],
        report["requestErrors"]
    );
    println!(
        "  orders/s end to end    {:.1}",
        report["ordersPerSecond"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  latency p50 / p99      {} ms / {} ms (max {} ms)",
        report["latencyMs"]["p50"], report["latencyMs"]["p99"], report["latencyMs"]["max"]
    );
    println!(
        "  share of failures      {:.3}",
        report["failureShare"].as_f64().unwrap_or(0.0)
    );
    println!("  RSS per role (KiB)     idle -> peak under load");
    for (name, idle) in idle {
        println!(
            "    {name:<20} {idle:>8} -> {:>8}",
            peak.get(&name).copied().unwrap_or(0)
        );
    }
    let _ = connection.close(200, "bye".into()).await;
}
