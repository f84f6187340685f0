//! The real `account` binary against real RabbitMQ, SQLite and PostgreSQL:
//! both packagings, the operator's topology, redelivery, web replicas, the
//! functions role, postOrder and a graceful stop. Failures: `failures.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use eventflow_runtime::testing::{
    AppProcess, amqp_uri, fresh_postgres, fresh_sqlite, temp_dir, unique_namespace,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn separate_web_and_worker_processes_make_a_new_account_active_through_the_broker() {
    let broker = Broker::prepared(5, 200).await;
    let env = broker.env(&fresh_sqlite());
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    let active =
        assert_reaches_active_with_a_linked_event_log(&web, &worker, "separate@example.com").await;
    let id = active["accountId"].as_str().unwrap();

    // The CloudEvent on the broker is the documented shape, linking back
    // through the web role's own URL.
    let ce = broker.next_tapped("ACCOUNT_CONFIRMED", id).await;
    assert_eq!(ce.event_type, "dev.eventflow.account.ACCOUNT_CONFIRMED");
    assert_eq!(ce.sequence.as_deref(), Some("00000000000000000003"));
    assert_eq!(
        ce.data["_links"]["account"]["href"],
        format!("{}/v1/accounts/{id}", web.http)
    );

    // SIGTERM drains and exits cleanly.
    assert!(
        worker
            .terminate(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        worker.log_text()
    );
    assert!(
        web.terminate(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        web.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn one_all_process_on_postgres_declares_its_own_topology_and_makes_an_account_active() {
    // No EVENTFLOW_BINDINGS: the app runs standalone and declares its own topology.
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("POD_NAMESPACE", unique_namespace()),
        ("DATABASE_URL", fresh_postgres().await),
    ];
    let mut all = AppProcess::spawn(BIN, "all", &env);
    all.wait_ready(READY_TIMEOUT).await;
    assert_reaches_active_with_a_linked_event_log(&all, &all, "all-in-one@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn one_all_process_with_embedded_sqlite_makes_an_account_active() {
    let data = temp_dir();
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("POD_NAMESPACE", unique_namespace()),
        ("EVENTFLOW_DATA_DIR", data.display().to_string()),
    ];
    let mut all = AppProcess::spawn(BIN, "all", &env);
    all.wait_ready(READY_TIMEOUT).await;
    assert_reaches_active_with_a_linked_event_log(&all, &all, "embedded@example.com").await;
    assert!(
        data.join("account.db").exists(),
        "the default store lives in EVENTFLOW_DATA_DIR"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn the_same_event_delivered_twice_changes_nothing_the_second_time() {
    let broker = Broker::prepared(5, 200).await;
    let env = broker.env(&fresh_sqlite());
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    let active =
        assert_reaches_active_with_a_linked_event_log(&web, &worker, "twice@example.com").await;
    let id = active["accountId"].as_str().unwrap();
    let created = broker.next_tapped("ACCOUNT_CREATED", id).await;
    let confirmed = broker.next_tapped("ACCOUNT_CONFIRMED", id).await;
    let handled = worker
        .metric("eventflow_messages_total{outcome=\"ok\"}")
        .await;
    for ce in [&created, &confirmed] {
        broker.publish(&ce.routing_key(), &ce.to_json()).await;
    }
    let start = std::time::Instant::now();
    while worker
        .metric("eventflow_messages_total{outcome=\"ok\"}")
        .await
        < handled + 2.0
    {
        assert!(
            start.elapsed() < ACTIVE_TIMEOUT,
            "redeliveries not handled:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(event_types(&active).await, LIFECYCLE);
    assert_eq!(
        get(active["_links"]["self"]["href"].as_str().unwrap()).await["status"],
        "ACTIVE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn the_functions_role_performs_what_the_worker_would() {
    let broker = Broker::prepared(5, 200).await;
    let env = broker.env(&fresh_sqlite());
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut functions = AppProcess::spawn(BIN, "functions", &[]);
    web.wait_ready(READY_TIMEOUT).await;
    functions.wait_ready(READY_TIMEOUT).await;
    let account = create(&web, "functions@example.com").await;
    let id = account["accountId"].as_str().unwrap();
    let url = account["_links"]["self"]["href"].as_str().unwrap();
    let http = reqwest::Client::new();

    // Structured mode.
    let created = broker.next_tapped("ACCOUNT_CREATED", id).await;
    let invoke = |name: &str| format!("{}/functions/{name}", functions.http);
    let r = http
        .post(invoke("accountCreated"))
        .header("content-type", "application/cloudevents+json")
        .body(created.to_json())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["ran"],
        json!(["markPending", "confirm"])
    );
    assert_eq!(get(url).await["status"], "CONFIRMED");

    // Binary mode: attributes in ce-* headers, data as the body.
    let confirmed = broker.next_tapped("ACCOUNT_CONFIRMED", id).await;
    let r = http
        .post(invoke("accountConfirmed"))
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", &confirmed.id)
        .header("ce-source", &confirmed.source)
        .header("ce-type", &confirmed.event_type)
        .header("ce-subject", id)
        .body(confirmed.data.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(url).await["status"], "ACTIVE");

    // Invoking again is harmless, and an unknown function is a 404 problem.
    let r = http
        .post(invoke("accountCreated"))
        .header("content-type", "application/cloudevents+json")
        .body(created.to_json())
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["ran"], json!([]));
    assert_eq!(event_types(&account).await, LIFECYCLE);
    let r = http.post(invoke("nope")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

/// A stand-in order context that records what it was asked.
async fn fake_order_context() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Value)>>>,
) {
    use axum::{Json, extract::State, http::HeaderMap, routing::post};
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Value)>>>;
    let seen: Seen = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let order_url = format!("{base}/v1/orders/o-1");
    let app = axum::Router::new()
        .route(
            "/v1/orders",
            post(move |State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| {
                let order_url = order_url.clone();
                async move {
                    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_owned());
                    seen.lock().unwrap().push((key, body.clone()));
                    let order = json!({ "orderId": "o-1", "accountId": body["accountId"], "status": "ORDER_CREATED",
                                        "_links": { "self": { "href": order_url } } });
                    (axum::http::StatusCode::CREATED, Json(order))
                }
            }),
        )
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn an_active_account_posts_an_order_to_the_order_context_of_its_stream() {
    let (orders, seen) = fake_order_context().await;
    let broker = Broker::prepared(5, 200).await;
    let mut env = broker.env(&fresh_sqlite());
    env.push(("EVENTFLOW_PEER_ORDER_URL", orders));
    let mut all = AppProcess::spawn(BIN, "all", &env);
    all.wait_ready(READY_TIMEOUT).await;
    let created = create(&all, "orders@example.com").await;
    let url = created["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let order =
        json!({ "lineItems": [{ "productId": "p1", "quantity": 1, "price": 9.5, "tax": 0.5 }] });
    let early = http
        .post(format!("{url}/commands/postOrder"))
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409, "only an ACTIVE account posts orders");

    let active = wait_status(&url, "ACTIVE", ACTIVE_TIMEOUT, &[&all]).await;
    let commands = get(active["_links"]["commands"]["href"].as_str().unwrap()).await;
    let post_order = commands["_links"]["postOrder"]["href"]
        .as_str()
        .expect("postOrder offered")
        .to_owned();
    let r = http
        .post(&post_order)
        .header("idempotency-key", "k-42")
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["orderId"], "o-1");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (key, body) = &seen[0];
    let id = active["accountId"].as_str().unwrap();
    assert_eq!(
        key.as_deref(),
        Some(format!("postOrder:{id}:k-42").as_str())
    );
    assert_eq!(body["accountId"], id);
    assert_eq!(body["accountHref"], url);
    assert_eq!(body["lineItems"][0]["productId"], "p1");
    assert_eq!(
        event_types(&active).await,
        LIFECYCLE,
        "posting an order changes no account state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn with_operator_bindings_the_app_waits_for_the_operator_to_declare_the_topology() {
    use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
    let namespace = unique_namespace();
    let bindings = Bindings::standalone(
        &namespace,
        &["account"],
        &[SubscriptionRequest {
            destination: "account",
            group: "account-worker",
            routing_keys: vec!["account.*".into()],
            max_attempts: 5,
            backoff_ms: 200,
        }],
    );
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("EVENTFLOW_BINDINGS", bindings.to_json()),
        ("DATABASE_URL", fresh_sqlite()),
    ];
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_live(READY_TIMEOUT).await;
    worker.wait_live(READY_TIMEOUT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = reqwest::get(format!("{}/readyz", worker.admin))
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "a worker ready before the topology exists");
    // The web role serves (commits wait in the outbox) and says why it does not publish.
    let r = reqwest::get(format!("{}/readyz", web.admin)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "ready; broker unreachable, events wait in the outbox"
    );
    // Now the operator declares it.
    let conn = lapin::Connection::connect(&amqp_uri(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    declare(
        &conn.create_channel().await.unwrap(),
        &Topology::of(&bindings),
        false,
    )
    .await
    .unwrap();
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    assert_reaches_active_with_a_linked_event_log(&web, &worker, "operator@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn two_web_replicas_on_one_postgres_store_publish_each_event_once() {
    let broker = Broker::prepared(5, 200).await;
    let env = broker.env(&fresh_postgres().await);
    let mut a = AppProcess::spawn(BIN, "web", &env);
    let mut b = AppProcess::spawn(BIN, "web", &env);
    a.wait_ready(READY_TIMEOUT).await;
    b.wait_ready(READY_TIMEOUT).await;
    let accounts = 40;
    for i in 0..accounts {
        let web = if i % 2 == 0 { &a } else { &b };
        create(web, &format!("replica{i}@example.com")).await;
    }
    let mut published = 0;
    let mut quiet_since = std::time::Instant::now();
    // Count until nothing more arrives for two relay poll periods.
    while quiet_since.elapsed() < Duration::from_secs(2) {
        let got = broker
            .channel
            .basic_get(
                broker.tap.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        match got {
            Some(_) => {
                published += 1;
                quiet_since = std::time::Instant::now();
            }
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(published, accounts, "every ACCOUNT_CREATED exactly once");
}
