//! Stalled saga steps are re-driven, with the real binaries: a step's
//! message is lost for good (purged from its worker's queue while no
//! worker consumes it), and the saga still ends — because the web role that
//! owns the waiting aggregate publishes the step's event again after
//! `EVENTFLOW_STALL_AFTER`, records `STEP_REDRIVEN` in its stream and counts
//! it in `eventflow_saga_redrives_total`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventflow_contract::Bindings;
use eventflow_runtime::testing::amqp_uri;
use lapin::{
    Connection, ConnectionProperties,
    options::{QueueDeclareOptions, QueuePurgeOptions},
    types::FieldTable,
};
use serde_json::Value;

/// Seconds a step may wait before it is re-driven, in these tests.
const STALL_AFTER_SECS: u32 = 2;

/// The worker group queue of a context.
fn worker_queue(ctx: &Context) -> String {
    let (_, json) = ctx
        .env
        .iter()
        .find(|(k, _)| *k == "EVENTFLOW_BINDINGS")
        .unwrap();
    Bindings::from_json(json).unwrap().subscribes[0]
        .queue
        .clone()
}

/// Waits until the queue of `ctx`'s workers (none running) holds a message,
/// then purges it: the step's event is lost.
async fn lose_the_queued_step(saga: &Saga, ctx: &Context) {
    let queue = worker_queue(ctx);
    let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let start = Instant::now();
    loop {
        let q = ch
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        if q.message_count() > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing reached {queue}\n{}",
            saga.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ch.queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    let _ = conn.close(200, "bye".into()).await;
}

/// The `STEP_REDRIVEN` events of a resource's stream.
async fn redrives(resource_url: &str) -> Vec<Value> {
    let log = get(&format!("{resource_url}/events")).await;
    log["_embedded"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "STEP_REDRIVEN")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_stalled_saga_step_is_re_driven_when_its_event_was_lost() {
    let _serial = SERIAL.lock().await;
    // No order worker yet: the order's first step waits in its queue.
    let mut saga = Saga::start_stalling_after(
        Store::Sqlite,
        1,
        &["payment", "warehouse"],
        STALL_AFTER_SECS,
    )
    .await;
    let warehouse = saga.warehouse_with(&[("apple", 1)]).await;
    let url = saga.order(&[("apple", 1)], "CARD").await;
    lose_the_queued_step(&saga, &saga.order).await;
    assert_eq!(get(&url).await["status"], "ORDER_CREATED");

    saga.order.add_worker().await;
    saga.order.add_worker().await;
    let order = saga.final_state(&url, Duration::from_secs(60)).await;
    assert_eq!(order["status"], "ORDER_SUCCEEDED", "{order}");
    let redriven = redrives(&url).await;
    assert!(!redriven.is_empty(), "no re-drive recorded: {order}");
    let first = &redriven[0]["payload"];
    assert_eq!(first["status"], "ORDER_CREATED", "{first}");
    assert_eq!(first["event"]["eventType"], "ORDER_CREATED", "{first}");
    assert_eq!(first["redrives"], 1, "{first}");
    let counted = saga
        .order
        .web
        .metric("eventflow_saga_redrives_total{aggregate=\"order\"}")
        .await;
    assert!(
        counted >= redriven.len() as f64,
        "{counted} re-drives counted, {} recorded",
        redriven.len()
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and postgresql"]
async fn a_payment_whose_processing_event_was_lost_is_re_driven_and_its_order_completes() {
    let _serial = SERIAL.lock().await;
    // No payment worker yet: the connected payment's processing waits.
    let mut saga = Saga::start_stalling_after(
        Store::Postgres,
        1,
        &["order", "warehouse"],
        STALL_AFTER_SECS,
    )
    .await;
    let warehouse = saga.warehouse_with(&[("apple", 1)]).await;
    let url = saga.order(&[("apple", 1)], "CARD").await;
    lose_the_queued_step(&saga, &saga.payment).await;

    saga.payment.add_worker().await;
    let order = saga.final_state(&url, Duration::from_secs(60)).await;
    assert_eq!(order["status"], "ORDER_SUCCEEDED", "{order}");
    let payment_url = order["_links"]["payment"]["href"].as_str().unwrap();
    let redriven = redrives(payment_url).await;
    assert!(
        !redriven.is_empty(),
        "payment not re-driven\n{}",
        saga.logs()
    );
    assert_eq!(
        redriven[0]["payload"]["event"]["eventType"],
        "ORDER_CONNECTED"
    );
    let counted = saga
        .payment
        .web
        .metric("eventflow_saga_redrives_total{aggregate=\"payment\"}")
        .await;
    assert!(counted >= 1.0, "{counted}");
    assert_eq!(assert_invariants(&saga, &warehouse).await, (1, 0));
}
