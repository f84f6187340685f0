//! A broker restart under running apps: the real `account` binary, as a web
//! and a worker process, against the fault broker (which the test stops and
//! starts with `services.sh fault-broker stop|start`) and a fresh PostgreSQL
//! store. Nothing exits; the web API keeps committing and stays ready while
//! the broker is away; once it is back both processes reconnect in-process
//! and what was committed meanwhile arrives downstream exactly once, in
//! commit order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventflow_contract::{Bindings, Topology, bindings::SubscriptionRequest, declare::declare};
use eventflow_runtime::{
    cloudevent::CloudEvent,
    store::EventStore,
    testing::{
        AppProcess, FAULT_BROKER, fault_amqp_uri, fault_broker, fresh_postgres, fresh_sqlite,
        unique_namespace,
    },
};
use lapin::{
    Connection, ConnectionProperties,
    options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
};
use serde_json::json;

/// Accounts created while the broker is down.
const WHILE_DOWN: usize = 20;
/// Longest wait for anything after the broker is back: its start, the apps'
/// capped backoff (10 s) and the catch-up.
const CATCH_UP: Duration = Duration::from_secs(60);

/// The account topology as the operator declares it, on the fault broker,
/// plus a durable tap queue (it must outlive the restart) that receives a
/// copy of every account event.
async fn prepare(uri: &str) -> (Bindings, String) {
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
    let connection = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    declare(&channel, &Topology::of(&bindings), false)
        .await
        .unwrap();
    let tap = format!("{namespace}.tap");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(tap.as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            tap.as_str().into(),
            bindings.exchange_for("account").unwrap().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "prepared".into()).await;
    (bindings, tap)
}

/// Everything on the tap, in the order the broker received it; deletes the tap.
async fn drain_tap(uri: &str, tap: &str) -> Vec<CloudEvent> {
    let connection = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut tapped = Vec::new();
    while let Some(m) = channel
        .basic_get(tap.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        tapped.push(serde_json::from_slice(&m.delivery.data).unwrap());
    }
    channel
        .queue_delete(tap.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = connection.close(200, "drained".into()).await;
    tapped
}

fn assert_running(processes: &mut [&mut AppProcess]) {
    for p in processes {
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!("{} exited with {status}:\n{}", p.http, p.log_text());
        }
    }
}

/// Polls `condition` every 20 ms until it holds; panics with the logs after `timeout`.
async fn until<F: AsyncFnMut() -> bool>(
    what: &str,
    timeout: Duration,
    logs: &[&AppProcess],
    mut condition: F,
) -> Duration {
    let start = Instant::now();
    while !condition().await {
        if start.elapsed() > timeout {
            let logs: Vec<String> = logs.iter().map(|p| p.log_text()).collect();
            panic!("{what}: not after {timeout:?}\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the fault rabbitmq and postgres"]
async fn web_and_worker_ride_out_a_broker_restart_and_deliver_what_was_committed_meanwhile_once_in_order()
 {
    let _serial = FAULT_BROKER.lock().await;
    let uri = fault_amqp_uri();
    // Up, whatever an earlier, interrupted run left behind.
    fault_broker("start");
    let (bindings, tap) = prepare(&uri).await;
    let database = fresh_postgres().await;
    let store = EventStore::connect(&database).await.unwrap();
    let env = vec![
        ("EVENTFLOW_BROKER_URI", uri.clone()),
        ("EVENTFLOW_BINDINGS", bindings.to_json()),
        ("DATABASE_URL", database.clone()),
    ];
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    assert_reaches_active_with_a_linked_event_log(&web, &worker, "before@example.com").await;
    until(
        "outbox drained before the stop",
        ACTIVE_TIMEOUT,
        &[&web],
        async || store.outbox_pending().await.unwrap() == 0,
    )
    .await;

    // The broker goes away.
    stop_broker(&web, &worker).await;
    let http = reqwest::Client::new();
    let (mut errors, mut unready) = (0, 0);
    let mut accounts = Vec::new();
    for i in 0..WHILE_DOWN {
        let r = http
            .post(format!("{}/v1/accounts", web.http))
            .json(&json!({ "firstName": "Ada", "lastName": "Down", "email": format!("down{i}@example.com") }))
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                accounts.push(r.json::<serde_json::Value>().await.unwrap())
            }
            _ => errors += 1,
        }
        let ready = http.get(format!("{}/readyz", web.admin)).send().await;
        if !ready.is_ok_and(|r| r.status() == 200) {
            unready += 1;
        }
        assert_running(&mut [&mut web, &mut worker]);
    }
    assert_eq!(errors, 0, "web requests failed while the broker was down");
    assert_eq!(unready, 0, "the web role turned unready without the broker");
    let body = http
        .get(format!("{}/readyz", web.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ready; broker unreachable, events wait in the outbox");
    let worker_ready = http
        .get(format!("{}/readyz", worker.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        worker_ready.status(),
        503,
        "a worker is unready without the broker"
    );
    assert_eq!(
        store.outbox_pending().await.unwrap(),
        WHILE_DOWN as i64,
        "every commit waits in the outbox"
    );

    // The broker comes back.
    fault_broker("start");
    let back = Instant::now();
    let mut reconnected = None;
    let drained = until(
        "outbox drained after the restart",
        CATCH_UP,
        &[&web, &worker],
        async || {
            if reconnected.is_none() && web.metric("eventflow_broker_reconnects_total").await >= 1.0
            {
                reconnected = Some(back.elapsed());
            }
            store.outbox_pending().await.unwrap() == 0
        },
    )
    .await;
    for account in &accounts {
        let url = account["_links"]["self"]["href"].as_str().unwrap();
        wait_status(url, "ACTIVE", CATCH_UP, &[&web, &worker]).await;
        assert_eq!(event_types(account).await, LIFECYCLE);
    }
    assert_running(&mut [&mut web, &mut worker]);
    for p in [&web, &worker] {
        assert!(
            p.metric("eventflow_broker_reconnects_total").await >= 1.0,
            "{}",
            p.log_text()
        );
        assert_eq!(p.metric("eventflow_broker_connected").await, 1.0);
    }
    worker.wait_ready(CATCH_UP).await;

    // Downstream: every event exactly once, in commit (position) order.
    until(
        "the worker's events published",
        CATCH_UP,
        &[&web, &worker],
        async || store.outbox_pending().await.unwrap() == 0,
    )
    .await;
    let tapped = drain_tap(&uri, &tap).await;
    let positions: Vec<u64> = tapped
        .iter()
        .map(|ce| ce.data["position"].as_u64().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "published out of order or twice: {positions:?}"
    );
    assert_eq!(
        tapped.len(),
        LIFECYCLE.len() * (WHILE_DOWN + 1),
        "{positions:?}"
    );
    for account in &accounts {
        let id = account["accountId"].as_str().unwrap();
        let created = tapped
            .iter()
            .filter(|ce| ce.event_name() == "ACCOUNT_CREATED" && ce.subject.as_deref() == Some(id))
            .count();
        assert_eq!(created, 1, "ACCOUNT_CREATED of {id}");
    }
    eprintln!(
        "broker restart: {WHILE_DOWN} commands while down, {errors} errors, {unready} unready answers; \
         broker back -> web reconnected {:?}, outbox drained {drained:?}",
        reconnected.unwrap_or(drained)
    );
    for line in web.log_text().lines().chain(worker.log_text().lines()) {
        if line.contains("re-established") {
            eprintln!("{line}");
        }
    }

    for p in [&mut worker, &mut web] {
        assert!(
            p.terminate(Duration::from_secs(30))
                .is_some_and(|s| s.success()),
            "{}",
            p.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the fault rabbitmq"]
async fn web_and_worker_stop_gracefully_while_the_broker_is_down() {
    let _serial = FAULT_BROKER.lock().await;
    let uri = fault_amqp_uri();
    fault_broker("start");
    let (bindings, tap) = prepare(&uri).await;
    let env = vec![
        ("EVENTFLOW_BROKER_URI", uri.clone()),
        ("EVENTFLOW_BINDINGS", bindings.to_json()),
        ("DATABASE_URL", fresh_sqlite()),
    ];
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    stop_broker(&web, &worker).await;
    // SIGTERM while reconnecting: the drain and the stop never wait for the broker.
    for p in [&mut worker, &mut web] {
        let start = Instant::now();
        assert!(
            p.terminate(Duration::from_secs(30))
                .is_some_and(|s| s.success()),
            "{}",
            p.log_text()
        );
        eprintln!(
            "{} stopped in {:?} without a broker",
            p.http,
            start.elapsed()
        );
    }
    fault_broker("start");
    drain_tap(&uri, &tap).await;
}

/// Stops the fault broker and waits until both processes report it gone.
async fn stop_broker(web: &AppProcess, worker: &AppProcess) {
    fault_broker("stop");
    until(
        "both see the broker gone",
        CATCH_UP,
        &[web, worker],
        async || {
            web.metric("eventflow_broker_connected").await == 0.0
                && worker.metric("eventflow_broker_connected").await == 0.0
        },
    )
    .await;
}
