//! A store outage is transient, not poison: the real order, payment and
//! warehouse binaries, whose workers give up on an event after 3 attempts
//! 200 ms apart, with payment and warehouse on the fault-test PostgreSQL,
//! see that PostgreSQL stopped for far longer while sagas are in flight.
//! Order keeps its store (the shared PostgreSQL) and takes orders during
//! the outage, so sagas are surely in flight whatever the machine's speed.
//! An attempt against a stopped store lasts as long as the web role waits
//! for a connection (`ACQUIRE_TIMEOUT`, 5 s) before its 503, so the old
//! budget was 3 × 5.2 s; the outage lasts 25 s. The web roles on that store
//! answer 503 with `Retry-After` and keep running, the workers hold the
//! events they cannot complete and retry them without spending attempts,
//! and once PostgreSQL is back every saga finishes — nothing is
//! dead-lettered. (With the in-process retry off,
//! `EVENTFLOW_TRANSIENT_RETRY_SECONDS=0`, the same run dead-letters the
//! events in flight and their orders hang.) Needs
//! `EVENTFLOW_TEST_FAULT_DATABASE_URL` (`services.sh up`); stops and starts
//! that server, so its tests run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventflow_contract::Bindings;
use eventflow_runtime::testing::{StoreOutage, amqp_uri};
use lapin::{Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable};
use serde_json::json;

/// The workers' retry budget: 3 attempts, 200 ms apart (the harness's backoff).
const MAX_ATTEMPTS: u32 = 3;
/// Far longer than those attempts take against a stopped store (3 × 5.2 s).
const OUTAGE: Duration = Duration::from_secs(25);
const ORDERS: usize = 8;

/// Messages in `queue` (a passive declare).
async fn depth(queue: &str) -> u32 {
    let connection = Connection::connect(&amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap();
    let _ = connection.close(200, "bye".into()).await;
    q.message_count()
}

fn contexts(saga: &Saga) -> [&Context; 3] {
    [&saga.order, &saga.payment, &saga.warehouse]
}

fn dead_letter_queue(context: &Context) -> String {
    let json = &context
        .env
        .iter()
        .find(|(k, _)| *k == "EVENTFLOW_BINDINGS")
        .unwrap()
        .1;
    Bindings::from_json(json).unwrap().subscribes[0]
        .dead_letter_queue
        .clone()
}

fn assert_running(saga: &mut Saga, when: &str) {
    let logs = saga.logs();
    for c in [&mut saga.order, &mut saga.payment, &mut saga.warehouse] {
        for p in std::iter::once(&mut c.web).chain(c.workers.iter_mut()) {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("a {} process exited {when}: {status}\n{logs}", c.app);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq and the fault-test postgresql"]
async fn a_store_outage_longer_than_the_retry_budget_dead_letters_nothing_and_every_saga_finishes()
{
    let _serial = SERIAL.lock().await;
    // Order keeps its store (on the shared PostgreSQL), so it takes orders
    // during the outage; payment and warehouse lose theirs.
    let mut saga = Saga::start_giving_up_after(
        [Store::Postgres, Store::FaultPostgres, Store::FaultPostgres],
        1,
        &["order", "payment", "warehouse"],
        MAX_ATTEMPTS,
    )
    .await;
    let warehouse = saga.warehouse_with(&[("apple", 20), ("pear", 20)]).await;
    let mut orders = Vec::new();
    for i in 0..ORDERS / 2 {
        orders.push(
            saga.order(&[("apple", 1), ("pear", 1 + (i % 2) as u32)], "CARD")
                .await,
        );
    }

    // Sagas may be in flight: take the stores of payment and warehouse away.
    let outage = StoreOutage::begin();
    let down = Instant::now();
    let client = reqwest::Client::new();
    let asked = Instant::now();
    let refused = client
        .post(format!("{}/v1/warehouses", saga.warehouse.web.http))
        .json(&json!({ "address": "3 Quay Street" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "{}", saga.logs());
    eprintln!("a command answered 503 after {:?}", asked.elapsed());
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let self_href = warehouse["_links"]["self"]["href"].as_str().unwrap();
    let read = client.get(self_href).send().await.unwrap();
    assert_eq!(read.status(), 503);
    // These sagas are surely in flight: their reservations wait on the
    // warehouse store, so some worker must hold an event it cannot complete.
    for i in ORDERS / 2..ORDERS {
        orders.push(
            saga.order(&[("apple", 1), ("pear", 1 + (i % 2) as u32)], "CARD")
                .await,
        );
    }
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    assert_running(&mut saga, "during the outage");
    let mut held = 0.0;
    for c in contexts(&saga) {
        for w in &c.workers {
            held += w
                .metric("eventflow_messages_total{outcome=\"transient_retry\"}")
                .await;
        }
    }
    assert!(
        held > 0.0,
        "no worker held a message during the outage\n{}",
        saga.logs()
    );
    outage.end();
    let up = Instant::now();

    for url in &orders {
        let order = saga.final_state(url, Duration::from_secs(120)).await;
        assert_eq!(
            order["status"],
            "ORDER_SUCCEEDED",
            "{order}\n{}",
            saga.logs()
        );
    }
    eprintln!(
        "every saga finished {:?} after the store came back ({held} in-process retries during the outage)",
        up.elapsed()
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (ORDERS, 0));
    assert_running(&mut saga, "after the outage");
    let mut transient = 0.0;
    for c in contexts(&saga) {
        assert_eq!(
            depth(&dead_letter_queue(c)).await,
            0,
            "{} DLQ\n{}",
            c.app,
            saga.logs()
        );
        for w in &c.workers {
            assert_eq!(
                w.metric("eventflow_messages_total{outcome=\"dead_lettered\"}")
                    .await,
                0.0,
                "{}",
                c.app
            );
            transient += w
                .metric("eventflow_messages_total{outcome=\"transient_retry\"}")
                .await;
        }
    }
    assert!(transient > 0.0, "the outage was seen as transient");
}
