//! The load simulator driving the saga's web roles through its HTTP API:
//! a run posts the planned orders, the planned share fails, and the report
//! says so; a long run stops when told.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventflow_runtime::testing::AppProcess;
use serde_json::{Value, json};

async fn wait_run(url: &str, status: &str, timeout: Duration, logs: &str) -> Value {
    let start = Instant::now();
    loop {
        let run = get(url).await;
        if run["status"] == status {
            return run;
        }
        assert!(start.elapsed() < timeout, "run not {status}: {run}\n{logs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_load_run_posts_the_planned_orders_and_reports_the_planned_share_failing() {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start(Store::Sqlite, 2).await;
    let env: Vec<(&str, String)> = saga
        .order
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("EVENTFLOW_PEER_"))
        .cloned()
        .collect();
    let mut sim = AppProcess::spawn(&binary("load-simulator"), "web", &env);
    sim.wait_ready(READY_TIMEOUT).await;

    let plan = json!({ "orders": 20, "ratePerSecond": 40, "failureShare": 0.25, "accounts": 3,
                       "products": 2, "stockPerProduct": 50 });
    let run = post(&format!("{}/v1/runs", sim.http), &plan).await;
    assert_eq!(run["status"], "RUNNING");
    let url = run["_links"]["self"]["href"].as_str().unwrap().to_owned();
    let run = wait_run(&url, "COMPLETED", Duration::from_secs(90), &saga.logs()).await;
    assert_eq!(run["ordersPosted"], 20, "{run}");
    assert_eq!(run["ordersDesignedToFail"], 5);
    assert_eq!(run["itemsStocked"], 100);
    assert_eq!(run["requestErrors"], 0, "{run}");
    assert_eq!(
        run["outcomes"],
        json!({ "ORDER_SUCCEEDED": 15, "ORDER_FAILED": 5, "unresolved": 0, "pending": 0 })
    );
    assert_eq!(run["failureShare"], 0.25);
    assert!(run["latencyMs"]["p99"].as_u64().unwrap() >= run["latencyMs"]["p50"].as_u64().unwrap());
    assert!(
        run["_links"]["stop"].is_null(),
        "a finished run offers no stop"
    );
    let orders = saga.orders().await;
    assert_eq!(orders.len(), 20);
    assert_eq!(
        orders
            .iter()
            .filter(|o| o["paymentMethod"] == "DECLINED")
            .count(),
        5
    );

    // A long run stops when told, part-way.
    let run = post(
        &format!("{}/v1/runs", sim.http),
        &json!({ "orders": 1000, "ratePerSecond": 2 }),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = post(run["_links"]["stop"]["href"].as_str().unwrap(), &json!({})).await;
    assert_eq!(stopped["status"], "STOPPED");
    let posted = stopped["ordersPosted"].as_u64().unwrap();
    assert!(posted < 1000, "{stopped}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = get(stopped["_links"]["self"]["href"].as_str().unwrap()).await;
    assert!(
        later["ordersPosted"].as_u64().unwrap() <= posted + 1,
        "kept posting after stop: {later}"
    );
    let list = get(&format!("{}/v1/runs", sim.http)).await;
    assert_eq!(list["_embedded"]["runs"].as_array().unwrap().len(), 2);
}
