//! The counter tapping the saga's destinations with its own consumer group:
//! after a mix of succeeding and failing orders its numbers, by type, are
//! exactly the events the three contexts recorded (and so published).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::*;
use eventflow_contract::{Bindings, bindings::SubscriptionRequest};
use eventflow_runtime::testing::{AppProcess, amqp_uri};
use serde_json::Value;

/// Every event in a context's global feed, counted as `<aggregate>.<EVENT>`.
async fn recorded(web: &str, into: &mut BTreeMap<String, u64>) {
    for e in all(&format!("{web}/v1/events?limit=100"), "events").await {
        let key = format!(
            "{}.{}",
            e["aggregateType"].as_str().unwrap(),
            e["eventType"].as_str().unwrap()
        );
        *into.entry(key).or_default() += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn the_counter_counts_exactly_the_events_the_saga_published_by_type() {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start(Store::Sqlite, 2).await;
    let taps: Vec<SubscriptionRequest> = ["order", "payment", "warehouse"]
        .into_iter()
        .map(|d| SubscriptionRequest {
            destination: d,
            group: "counter",
            routing_keys: vec!["#".into()],
            max_attempts: 3,
            backoff_ms: 200,
        })
        .collect();
    let bindings = Bindings::standalone(&saga.namespace, &[], &taps);
    declare_bindings(&bindings).await;
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("EVENTFLOW_BINDINGS", bindings.to_json()),
    ];
    let mut counter = AppProcess::spawn(&binary("counter"), "all", &env);
    counter.wait_ready(READY_TIMEOUT).await;

    saga.warehouse_with(&[("apple", 2)]).await;
    // One after the other, so each ends as designed: paid, declined, short, nowhere.
    for (lines, method) in [
        (&[("apple", 1)][..], "CARD"),
        (&[("apple", 1)][..], "DECLINED"),
        (&[("apple", 3)][..], "CARD"),
        (&[("durian", 1)][..], "CARD"),
    ] {
        let url = saga.order(lines, method).await;
        saga.final_state(&url, Duration::from_secs(60)).await;
    }

    let start = Instant::now();
    let (expected, counted) = loop {
        let mut expected = BTreeMap::new();
        for web in [&saga.order.web, &saga.payment.web, &saga.warehouse.web] {
            recorded(&web.http, &mut expected).await;
        }
        let counts = get(&format!("{}/v1/counts", counter.http)).await;
        let counted: BTreeMap<String, u64> =
            serde_json::from_value(counts["byType"].clone()).unwrap();
        if counted == expected || start.elapsed() > Duration::from_secs(20) {
            break (expected, counts);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_type: BTreeMap<String, u64> = serde_json::from_value(counted["byType"].clone()).unwrap();
    assert_eq!(by_type, expected, "{}", counter.log_text());
    for key in [
        "order.ORDER_SUCCEEDED",
        "order.ORDER_FAILED",
        "payment.PAYMENT_FAILED",
        "reservation.RESERVATION_RELEASED",
    ] {
        assert!(
            by_type.get(key).copied().unwrap_or(0) > 0,
            "no {key} counted: {by_type:?}"
        );
    }
    assert_eq!(
        counted["total"],
        Value::from(expected.values().sum::<u64>())
    );
    assert_eq!(
        counted["windows"]["1m"], counted["byType"],
        "everything happened in the last minute"
    );
    let metrics = reqwest::get(format!("{}/metrics", counter.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "eventflow_counter_events_total{{type=\"order.ORDER_CREATED\"}} {}",
        expected["order.ORDER_CREATED"]
    );
    assert!(metrics.contains(&line), "{metrics}");
}
