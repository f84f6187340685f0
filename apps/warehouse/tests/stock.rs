//! The warehouse web role in-process (no broker): reservations racing for
//! the last items on SQLite and on PostgreSQL — through two web "replicas"
//! with their own connection pools on one store — never take an item twice;
//! reserveOrder is repeat-safe; releasing gives the item back once; a
//! reservation looks up only the available items of its product in its
//! warehouse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashSet, sync::Arc};

use axum::{Router, body::Body, http::Request};
use eventflow_runtime::{
    app::web_router,
    metrics::Metrics,
    store::EventStore,
    testing::{fresh_postgres, fresh_sqlite},
    web::WebContext,
};
use eventflow_warehouse::InventoryItem;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

async fn replica(url: &str) -> Router {
    let ctx = WebContext {
        store: EventStore::connect(url).await.unwrap(),
        metrics: Metrics::default(),
        relay: Arc::new(Notify::new()),
    };
    web_router(&eventflow_warehouse::spec(), ctx)
}

async fn call(app: &Router, method: &str, uri: &str, body: Value) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "warehouse.test")
        .header("content-type", "application/json")
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .unwrap();
    let (status, body, _) = send(app, request).await;
    (status, body)
}

/// The status, JSON body (Null when none) and whether the answer replays a
/// first one (`idempotent-replayed`).
async fn send(app: &Router, request: Request<Body>) -> (u16, Value, bool) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        replayed,
    )
}

fn path(href: &Value) -> String {
    href.as_str()
        .unwrap()
        .trim_start_matches("http://warehouse.test")
        .to_owned()
}

/// A warehouse with `items` apples and `orders` one-apple orders reserved
/// and connected; returns the reservations' paths.
async fn racing_reservations(app: &Router, items: u32, orders: u32) -> (String, Vec<String>) {
    let (s, w) = call(
        app,
        "POST",
        "/v1/warehouses",
        json!({ "address": "1 Dock Road" }),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let id = w["warehouseId"].as_str().unwrap().to_owned();
    let (s, stocked) = call(
        app,
        "POST",
        &format!("/v1/warehouses/{id}/inventory"),
        json!({ "productId": "apple", "quantity": items }),
    )
    .await;
    assert_eq!(s, 201, "{stocked}");
    let mut reservations = Vec::new();
    for o in 0..orders {
        let order = format!("{}-{o}", &id[..8]);
        let body = json!({ "orderId": order, "orderHref": format!("http://order.test/v1/orders/{order}"),
                           "lineItems": [{ "productId": "apple", "quantity": 1 }] });
        let (s, r) = call(
            app,
            "POST",
            &format!("/v1/warehouses/{id}/commands/reserveOrder"),
            body,
        )
        .await;
        assert_eq!(s, 200, "{r}");
        let url = path(&r["_embedded"]["reservations"][0]["_links"]["self"]["href"]);
        let (s, _) = call(
            app,
            "POST",
            &format!("{url}/commands/connectOrder"),
            Value::Null,
        )
        .await;
        assert_eq!(s, 200);
        reservations.push(url);
    }
    (id, reservations)
}

/// Races every reservation's connectInventory across `replicas`; asserts
/// exactly `items` succeed, each with its own item.
async fn assert_race(replicas: &[Router], items: u32, orders: u32) {
    let (warehouse, reservations) = racing_reservations(&replicas[0], items, orders).await;
    let mut tasks = Vec::new();
    for (i, r) in reservations.iter().enumerate() {
        let (app, r) = (replicas[i % replicas.len()].clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            call(
                &app,
                "POST",
                &format!("{r}/commands/connectInventory"),
                Value::Null,
            )
            .await
        }));
    }
    let mut succeeded = HashSet::new();
    let mut failed = 0;
    for t in tasks {
        let (status, r) = t.await.unwrap();
        assert_eq!(status, 200, "{r}");
        match r["status"].as_str().unwrap() {
            "RESERVATION_SUCCEEDED" => assert!(
                succeeded.insert(r["inventoryId"].as_str().unwrap().to_owned()),
                "item taken twice: {r}"
            ),
            "RESERVATION_FAILED" => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(succeeded.len() as u32, items);
    assert_eq!(failed, orders - items);
    let (_, stock) = call(
        &replicas[0],
        "GET",
        &format!("/v1/warehouses/{warehouse}/inventory"),
        Value::Null,
    )
    .await;
    assert_eq!(
        stock["products"]["apple"],
        json!({ "available": 0, "held": items, "sold": 0, "created": items })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_reservations_racing_for_the_last_item_exactly_one_gets_it_on_sqlite() {
    let app = replica(&fresh_sqlite()).await;
    assert_race(std::slice::from_ref(&app), 1, 2).await;
    assert_race(&[app], 5, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs postgresql"]
async fn reservations_racing_through_two_web_replicas_on_postgres_never_share_an_item() {
    let url = fresh_postgres().await;
    let replicas = [replica(&url).await, replica(&url).await];
    assert_race(&replicas, 1, 2).await;
    assert_race(&replicas, 10, 40).await;
}

#[tokio::test]
async fn reserving_an_order_again_answers_with_the_same_reservations() {
    let app = replica(&fresh_sqlite()).await;
    let (_, w) = call(&app, "POST", "/v1/warehouses", json!({ "address": "x" })).await;
    let reserve = path(&w["_links"]["commands"]["href"]) + "/reserveOrder";
    let body = json!({ "orderId": "o1", "orderHref": "http://order.test/v1/orders/o1",
                       "lineItems": [{ "productId": "apple", "quantity": 2 }, { "productId": "pear", "quantity": 1 }] });
    let (s, first) = call(&app, "POST", &reserve, body.clone()).await;
    assert_eq!(s, 200, "{first}");
    let ids: Vec<&str> = first["_embedded"]["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["o1-0-0", "o1-0-1", "o1-1-0"]);
    let (s, again) = call(&app, "POST", &reserve, body).await;
    assert_eq!(s, 200);
    assert_eq!(
        again["_embedded"]["reservations"].as_array().unwrap().len(),
        3
    );
    let (_, all) = call(&app, "GET", "/v1/reservations", Value::Null).await;
    assert_eq!(
        all["_embedded"]["reservations"].as_array().unwrap().len(),
        3
    );
    let (s, bad) = call(
        &app,
        "POST",
        &reserve,
        json!({ "orderId": "o 2", "orderHref": "x", "lineItems": [] }),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(bad["field"], "orderId");
}

#[tokio::test]
async fn releasing_gives_the_item_back_once() {
    let app = replica(&fresh_sqlite()).await;
    let (warehouse, reservations) = racing_reservations(&app, 1, 1).await;
    let r = &reservations[0];
    let (_, taken) = call(
        &app,
        "POST",
        &format!("{r}/commands/connectInventory"),
        Value::Null,
    )
    .await;
    assert_eq!(taken["status"], "RESERVATION_SUCCEEDED");
    let (_, commands) = call(&app, "GET", &format!("{r}/commands"), Value::Null).await;
    assert_eq!(commands["commands"], json!(["releaseInventory"]));
    let (s, released) = call(
        &app,
        "POST",
        &format!("{r}/commands/releaseInventory"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{released}");
    assert_eq!(released["status"], "RESERVATION_RELEASED");
    let (s, again) = call(
        &app,
        "POST",
        &format!("{r}/commands/releaseInventory"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 409, "{again}");
    assert_eq!(again["title"], "Conflict");
    let (_, item) = call(
        &app,
        "GET",
        &path(&taken["_links"]["inventory"]["href"]),
        Value::Null,
    )
    .await;
    assert_eq!(item["status"], "INVENTORY_RELEASED");
    assert!(item["reservationId"].is_null());
    let (_, stock) = call(
        &app,
        "GET",
        &format!("/v1/warehouses/{warehouse}/inventory"),
        Value::Null,
    )
    .await;
    assert_eq!(
        stock["products"]["apple"],
        json!({ "available": 1, "held": 0, "sold": 0, "created": 1 })
    );
}

#[tokio::test]
async fn items_are_stocked_through_their_warehouse_only() {
    let app = replica(&fresh_sqlite()).await;
    let (s, p) = call(
        &app,
        "POST",
        "/v1/inventory",
        json!({ "productId": "apple" }),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    let (s, _) = call(
        &app,
        "POST",
        "/v1/warehouses/nope/inventory",
        json!({ "productId": "apple" }),
    )
    .await;
    assert_eq!(s, 404);
    let (_, w) = call(&app, "POST", "/v1/warehouses", json!({ "address": "x" })).await;
    let inventory = path(&w["_links"]["inventory"]["href"]);
    let (s, p) = call(
        &app,
        "POST",
        &inventory,
        json!({ "productId": "apple", "quantity": 0 }),
    )
    .await;
    assert_eq!((s, p["field"].as_str()), (400, Some("quantity")));
    let (_, found) = call(
        &app,
        "GET",
        "/v1/warehouses/search/findByProducts?productIds=apple",
        Value::Null,
    )
    .await;
    assert_eq!(found["_embedded"]["warehouses"], json!([]));
    call(
        &app,
        "POST",
        &inventory,
        json!({ "productId": "apple", "quantity": 2 }),
    )
    .await;
    let (_, found) = call(
        &app,
        "GET",
        "/v1/warehouses/search/findByProducts?productIds=apple",
        Value::Null,
    )
    .await;
    assert_eq!(
        found["_embedded"]["warehouses"][0]["warehouseId"],
        w["warehouseId"]
    );
    let (_, found) = call(
        &app,
        "GET",
        "/v1/warehouses/search/findByProducts?productIds=apple,pear",
        Value::Null,
    )
    .await;
    assert_eq!(
        found["_embedded"]["warehouses"],
        json!([]),
        "pear is held nowhere"
    );
}

async fn stock(app: &Router, warehouse: &str, product: &str, quantity: u32) {
    let (s, body) = call(
        app,
        "POST",
        &format!("/v1/warehouses/{warehouse}/inventory"),
        json!({ "productId": product, "quantity": quantity }),
    )
    .await;
    assert_eq!(s, 201, "{body}");
}

async fn found_by_products(app: &Router, products: &str) -> Vec<String> {
    let (s, found) = call(
        app,
        "GET",
        &format!("/v1/warehouses/search/findByProducts?productIds={products}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, 200, "{found}");
    found["_embedded"]["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["warehouseId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_looks_up_only_the_available_items_of_its_product_in_its_warehouse() {
    let url = fresh_sqlite();
    let app = replica(&url).await;
    let store = EventStore::connect(&url).await.unwrap();
    // w1: 3 apples (two orders for them) and 2 pears; w2: 2 apples; w3: 1 apple, taken.
    let (w1, reservations) = racing_reservations(&app, 3, 2).await;
    stock(&app, &w1, "pear", 2).await;
    let (w2, _) = racing_reservations(&app, 2, 0).await;
    let (w3, sold_out) = racing_reservations(&app, 1, 1).await;
    let connect = |r: &String| format!("{r}/commands/connectInventory");
    let (_, taken) = call(&app, "POST", &connect(&sold_out[0]), Value::Null).await;
    assert_eq!(taken["status"], "RESERVATION_SUCCEEDED");
    let (_, first) = call(&app, "POST", &connect(&reservations[0]), Value::Null).await;
    assert_eq!(first["status"], "RESERVATION_SUCCEEDED", "{first}");
    let first_item = first["inventoryId"].as_str().unwrap();

    // What the next reservation of w1 reads: w1's two apples still free,
    // not the taken one, not its pears, not w2's apples.
    let apples = InventoryItem::stock_key("apple", true);
    let free = store
        .lookup::<InventoryItem>(&w1, Some(&apples), 32)
        .await
        .unwrap();
    assert_eq!(free.len(), 2, "{free:?}");
    for (id, item) in &free {
        assert_eq!(
            (item.warehouse_id.as_str(), item.product_id.as_str()),
            (w1.as_str(), "apple")
        );
        assert!(item.available() && id != first_item, "{item:?}");
    }
    let (_, second) = call(&app, "POST", &connect(&reservations[1]), Value::Null).await;
    assert_eq!(second["status"], "RESERVATION_SUCCEEDED", "{second}");
    let second_item = second["inventoryId"].as_str().unwrap();
    assert!(free.iter().any(|(id, _)| id == second_item));
    let free = store.lookup::<InventoryItem>(&w1, Some(&apples), 32).await;
    assert_eq!(free.unwrap().len(), 1);
    assert!(
        store
            .lookup::<InventoryItem>(&w3, Some(&apples), 32)
            .await
            .unwrap()
            .is_empty()
    );

    // A warehouse's inventory is its own items only.
    let mine = store.lookup::<InventoryItem>(&w1, None, 100).await.unwrap();
    assert_eq!(mine.len(), 5);
    assert!(mine.iter().all(|(_, i)| i.warehouse_id == w1));
    let (_, inventory) = call(
        &app,
        "GET",
        &format!("/v1/warehouses/{w1}/inventory"),
        Value::Null,
    )
    .await;
    assert_eq!(
        inventory["products"],
        json!({ "apple": { "available": 1, "held": 2, "sold": 0, "created": 3 },
                "pear": { "available": 2, "held": 0, "sold": 0, "created": 2 } })
    );
    assert_eq!(
        inventory["_embedded"]["inventory"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // The search: most available first; a warehouse whose apples are all
    // taken still holds apples; only w1 holds pears too.
    assert_eq!(
        found_by_products(&app, "apple").await,
        [w2.as_str(), &w1, &w3]
    );
    assert_eq!(found_by_products(&app, "apple,pear").await, [w1.as_str()]);
    assert_eq!(
        found_by_products(&app, "pear,plum").await,
        Vec::<String>::new()
    );
}

/// POSTs `uri` with no body and `Idempotency-Key: key`; returns the status,
/// the body and whether the answer says it replays a first one.
async fn post_with_key(app: &Router, uri: &str, key: &str) -> (u16, Value, bool) {
    let request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("host", "warehouse.test")
        .header("idempotency-key", key)
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

#[tokio::test]
async fn releasing_an_item_again_with_the_same_key_replays_the_first_answer() {
    let app = replica(&fresh_sqlite()).await;
    let (_, reservations) = racing_reservations(&app, 1, 1).await;
    let r = &reservations[0];
    let (_, taken) = call(
        &app,
        "POST",
        &format!("{r}/commands/connectInventory"),
        Value::Null,
    )
    .await;
    let item = path(&taken["_links"]["inventory"]["href"]);
    let release = format!("{item}/commands/release");
    let (s, first, replayed) = post_with_key(&app, &release, "release-1").await;
    assert_eq!((s, replayed), (200, false), "{first}");
    assert_eq!(first["status"], "RESERVATION_RELEASED");
    // The item is available now, yet the repeat gets the first answer, not
    // a conflict: a caller whose answer was lost may simply try again.
    let (s, again, replayed) = post_with_key(&app, &release, "release-1").await;
    assert_eq!((s, replayed), (200, true), "{again}");
    assert_eq!(again, first);
    // A new key is a new request: nothing is held any more.
    let (s, other, _) = post_with_key(&app, &release, "release-2").await;
    assert_eq!(s, 409, "{other}");
}
