//! The order saga end to end: the real order, payment and warehouse
//! binaries (a web role and two worker processes per context) against real
//! RabbitMQ and SQLite or PostgreSQL — the happy path, both compensations,
//! a reservation that succeeds after its order failed, and events that
//! arrive before the state they need.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const FINAL: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn an_order_in_stock_with_a_good_card_succeeds_with_its_items_reserved_and_its_payment_succeeded()
 {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start(Store::Sqlite, 2).await;
    let warehouse = saga.warehouse_with(&[("apple", 3), ("pear", 2)]).await;
    let url = saga.order(&[("apple", 2), ("pear", 1)], "CARD").await;
    let order = saga.final_state(&url, FINAL).await;
    assert_eq!(order["status"], "ORDER_SUCCEEDED", "{order}");
    assert_eq!(order["total"], 33.0);

    let log = get(order["_links"]["events"]["href"].as_str().unwrap()).await;
    assert_eq!(
        event_types(&log),
        [
            "ORDER_CREATED",
            "ACCOUNT_CONNECTED",
            "RESERVATION_PENDING",
            "RESERVATION_ADDED",
            "RESERVATION_ADDED",
            "RESERVATION_ADDED",
            "RESERVATION_SUCCEEDED",
            "PAYMENT_CREATED",
            "PAYMENT_CONNECTED",
            "PAYMENT_PENDING",
            "PAYMENT_SUCCEEDED",
            "ORDER_SUCCEEDED"
        ]
    );
    let payment = get(order["_links"]["payment"]["href"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "PAYMENT_SUCCEEDED");
    assert_eq!(payment["amount"], 33.0);
    assert_eq!(payment["_links"]["order"]["href"], url);

    for r in order["reservations"].as_array().unwrap() {
        let reservation = get(r["href"].as_str().unwrap()).await;
        let item = get(reservation["_links"]["inventory"]["href"].as_str().unwrap()).await;
        assert_eq!(item["status"], "INVENTORY_RESERVED", "{item}");
        assert_eq!(item["reservationId"], reservation["reservationId"]);
    }
    let stock = get(warehouse["_links"]["inventory"]["href"].as_str().unwrap()).await;
    assert_eq!(
        stock["products"]["apple"],
        json!({ "available": 1, "held": 0, "sold": 2, "created": 3 })
    );
    assert_eq!(
        stock["products"]["pear"],
        json!({ "available": 1, "held": 0, "sold": 1, "created": 2 })
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (1, 0));

    // The account's orders, as an account's `orders` link would find them:
    // another account's order is not among them.
    let theirs = saga.order_for("acc-2", &[("durian", 1)], "CARD").await;
    let by_account = |account: &str| {
        let url = format!(
            "{}/v1/orders/search/findByAccount?accountId={account}",
            saga.order.web.http
        );
        async move { get(&url).await }
    };
    let hrefs = |doc: &serde_json::Value| -> Vec<String> {
        doc["_embedded"]["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["_links"]["self"]["href"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        hrefs(&by_account("acc-1").await),
        std::slice::from_ref(&url)
    );
    assert_eq!(hrefs(&by_account("acc-2").await), [theirs]);
    let none = get(&format!(
        "{}/v1/orders/search/findByAccount?accountId=nobody",
        saga.order.web.http
    ))
    .await;
    assert_eq!(none["_embedded"]["orders"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn an_order_beyond_the_stock_fails_and_gives_back_every_item_it_had_reserved() {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start(Store::Sqlite, 2).await;
    let warehouse = saga.warehouse_with(&[("apple", 2), ("pear", 1)]).await;
    // Three apples wanted, two in stock: two reservations succeed, one fails.
    let short = saga.order(&[("apple", 3), ("pear", 1)], "CARD").await;
    // No warehouse holds a durian at all.
    let nowhere = saga.order(&[("durian", 1)], "CARD").await;

    let order = saga.final_state(&short, FINAL).await;
    assert_eq!(order["status"], "ORDER_FAILED", "{order}");
    assert_eq!(order["failureReason"], "1 of 4 units out of stock");
    let outcomes: Vec<&str> = order["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "SUCCEEDED").count(),
        3,
        "{order}"
    );
    for r in order["reservations"].as_array().unwrap() {
        let reservation = get(r["href"].as_str().unwrap()).await;
        let expected = if r["outcome"] == "SUCCEEDED" {
            "RESERVATION_RELEASED"
        } else {
            "RESERVATION_FAILED"
        };
        assert_eq!(reservation["status"], expected, "{reservation}");
    }
    let stock = get(warehouse["_links"]["inventory"]["href"].as_str().unwrap()).await;
    assert_eq!(
        stock["products"]["apple"],
        json!({ "available": 2, "held": 0, "sold": 0, "created": 2 })
    );
    assert_eq!(
        stock["products"]["pear"],
        json!({ "available": 1, "held": 0, "sold": 0, "created": 1 })
    );

    let order = saga.final_state(&nowhere, FINAL).await;
    assert_eq!(order["status"], "ORDER_FAILED");
    assert_eq!(
        order["failureReason"],
        "no warehouse holds every product of durian"
    );
    assert_eq!(order["reservations"], json!([]));
    assert!(
        order["paymentId"].is_null(),
        "no payment for an order never reserved"
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_declined_payment_fails_the_order_and_gives_back_every_reserved_item_on_postgres() {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start(Store::Postgres, 2).await;
    let warehouse = saga.warehouse_with(&[("apple", 2)]).await;
    let url = saga.order(&[("apple", 2)], "DECLINED").await;
    let order = saga.final_state(&url, FINAL).await;
    assert_eq!(order["status"], "ORDER_FAILED", "{order}");
    assert_eq!(order["failureReason"], "payment declined");
    let payment = get(order["_links"]["payment"]["href"].as_str().unwrap()).await;
    assert_eq!(payment["status"], "PAYMENT_FAILED");
    assert_eq!(
        payment["failureReason"],
        "payment method DECLINED is declined"
    );
    let log = get(order["_links"]["events"]["href"].as_str().unwrap()).await;
    let types = event_types(&log);
    assert_eq!(
        &types[types.len() - 3..],
        ["PAYMENT_PENDING", "PAYMENT_FAILED", "ORDER_FAILED"]
    );
    for r in order["reservations"].as_array().unwrap() {
        assert_eq!(
            get(r["href"].as_str().unwrap()).await["status"],
            "RESERVATION_RELEASED"
        );
    }
    let stock = get(warehouse["_links"]["inventory"]["href"].as_str().unwrap()).await;
    assert_eq!(
        stock["products"]["apple"],
        json!({ "available": 2, "held": 0, "sold": 0, "created": 2 })
    );

    // The released items sell to the next order.
    let url = saga.order(&[("apple", 2)], "CARD").await;
    assert_eq!(
        saga.final_state(&url, FINAL).await["status"],
        "ORDER_SUCCEEDED"
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_reservation_that_succeeds_after_its_order_failed_releases_itself() {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start(Store::Sqlite, 2).await;
    let warehouse = saga.warehouse_with(&[("apple", 1)]).await;
    let url = saga.order(&[("kiwi", 1)], "CARD").await;
    let order = saga.final_state(&url, FINAL).await;
    assert_eq!(order["status"], "ORDER_FAILED", "no warehouse held kiwis");

    // Kiwis arrive, and a late reserveOrder for the failed order reaches
    // the warehouse (as a delayed or duplicated request would).
    let inventory = warehouse["_links"]["inventory"]["href"].as_str().unwrap();
    post(inventory, &json!({ "productId": "kiwi", "quantity": 1 })).await;
    let commands = get(warehouse["_links"]["commands"]["href"].as_str().unwrap()).await;
    let reserved = post(
        commands["_links"]["reserveOrder"]["href"].as_str().unwrap(),
        &json!({ "orderId": order["orderId"], "orderHref": url, "lineItems": [{ "productId": "kiwi", "quantity": 1 }] }),
    )
    .await;
    let reservation_url = reserved["_embedded"]["reservations"][0]["_links"]["self"]["href"]
        .as_str()
        .unwrap();

    let start = std::time::Instant::now();
    let reservation = loop {
        let r = get(reservation_url).await;
        if r["status"] == "RESERVATION_RELEASED" {
            break r;
        }
        assert!(
            start.elapsed() < FINAL,
            "not released: {r}\n{}",
            saga.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = get(reservation["_links"]["events"]["href"].as_str().unwrap()).await;
    assert_eq!(
        event_types(&log),
        [
            "RESERVATION_CREATED",
            "RESERVATION_REQUESTED",
            "ORDER_CONNECTED",
            "RESERVATION_PENDING",
            "INVENTORY_CONNECTED",
            "RESERVATION_SUCCEEDED",
            "RESERVATION_RELEASED"
        ],
        "it took the kiwi, then gave it back"
    );
    let stock = get(inventory).await;
    assert_eq!(
        stock["products"]["kiwi"],
        json!({ "available": 1, "held": 0, "sold": 0, "created": 1 })
    );
    let order = get(&url).await;
    assert_eq!(order["status"], "ORDER_FAILED");
    assert_eq!(
        order["reservations"],
        json!([]),
        "the failed order never counted it"
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn payment_packaged_as_one_all_process_completes_the_saga_on_postgres() {
    let _serial = SERIAL.lock().await;
    let saga = Saga::start_with_combined_payment(Store::Postgres, 2).await;
    assert!(saga.payment.workers.is_empty());
    let warehouse = saga.warehouse_with(&[("apple", 1)]).await;
    let paid = saga.order(&[("apple", 1)], "CARD").await;
    assert_eq!(
        saga.final_state(&paid, FINAL).await["status"],
        "ORDER_SUCCEEDED"
    );
    let declined = saga.order(&[("apple", 1)], "DECLINED").await;
    assert_eq!(
        saga.final_state(&declined, FINAL).await["status"],
        "ORDER_FAILED"
    );
    assert_eq!(assert_invariants(&saga, &warehouse).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn the_functions_role_runs_a_saga_step_the_worker_would_run() {
    let _serial = SERIAL.lock().await;
    // No order worker: only the functions role moves the order.
    let saga = Saga::start_with(Store::Sqlite, 1, &["payment", "warehouse"]).await;
    let mut functions = eventflow_runtime::testing::AppProcess::spawn(
        &binary("order"),
        "functions",
        &saga.order.env,
    );
    functions.wait_ready(READY_TIMEOUT).await;
    let url = saga.order(&[("apple", 1)], "CARD").await;
    let order = get(&url).await;
    let log = get(order["_links"]["events"]["href"].as_str().unwrap()).await;
    let created = &log["_embedded"]["events"][0];
    let cloudevent = json!({
        "specversion": "1.0", "id": created["eventId"], "source": format!("{}/v1/orders", saga.order.web.http),
        "type": "dev.eventflow.order.ORDER_CREATED", "subject": order["orderId"],
        "sequence": "00000000000000000001", "data": created,
    });
    let invoke = |name: &str| format!("{}/functions/{name}", functions.http);
    let http = reqwest::Client::new();
    let r = http
        .post(invoke("connectAccount"))
        .header("content-type", "application/cloudevents+json")
        .body(cloudevent.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["ran"],
        json!(["connectAccount"])
    );
    assert_eq!(get(&url).await["status"], "ACCOUNT_CONNECTED");
    // Invoking it again does nothing: the order has moved on.
    let r = http
        .post(invoke("connectAccount"))
        .header("content-type", "application/cloudevents+json")
        .body(cloudevent.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["ran"],
        json!([])
    );
    assert_eq!(
        event_types(&get(order["_links"]["events"]["href"].as_str().unwrap()).await),
        ["ORDER_CREATED", "ACCOUNT_CONNECTED"]
    );
}
