//! Partial failures, with the real `account` binary against real RabbitMQ:
//! a crash between commit and publish, a broker that is down, a poison
//! message, a web role the worker cannot reach, SIGTERM with work in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use eventflow_runtime::testing::{
    AppProcess, Ports, ReservedPort, amqp_uri, fresh_sqlite, unique_namespace,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn an_event_committed_before_the_web_role_dies_is_published_after_restart() {
    let broker = Broker::prepared(5, 200).await;
    let env = broker.env(&fresh_sqlite());
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    worker.wait_ready(READY_TIMEOUT).await;
    let mut faulty_env = env.clone();
    faulty_env.push(("EVENTFLOW_FAULT_EXIT_AFTER_COMMIT", "1".into()));
    let mut web = AppProcess::spawn(BIN, "web", &faulty_env);
    web.wait_ready(READY_TIMEOUT).await;
    let _ = reqwest::Client::new()
        .post(format!("{}/v1/accounts", web.http))
        .json(&json!({ "firstName": "Out", "lastName": "Box", "email": "outbox@example.com" }))
        .send()
        .await;
    let status = tokio::task::block_in_place(|| {
        let start = std::time::Instant::now();
        loop {
            if let Some(s) = web.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the fault hook did not fire"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    assert_eq!(status.code(), Some(86), "{}", web.log_text());
    assert_eq!(
        worker
            .metric("eventflow_messages_total{outcome=\"ok\"}")
            .await,
        0.0,
        "published before the crash"
    );

    let mut restarted = AppProcess::spawn(BIN, "web", &env);
    restarted.wait_ready(READY_TIMEOUT).await;
    let list = get(&format!("{}/v1/accounts", restarted.http)).await;
    let account = &list["_embedded"]["accounts"][0];
    assert_eq!(
        account["email"], "outbox@example.com",
        "the commit survived the crash: {list}"
    );
    let url = account["_links"]["self"]["href"].as_str().unwrap();
    wait_status(url, "ACTIVE", ACTIVE_TIMEOUT, &[&restarted, &worker]).await;
    assert_eq!(event_types(account).await, LIFECYCLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_poison_message_is_dead_lettered_after_max_attempts_and_the_worker_keeps_serving() {
    let broker = Broker::prepared(3, 100).await;
    let env = broker.env(&fresh_sqlite());
    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    broker
        .publish("account.ACCOUNT_CREATED", b"{ this is not a CloudEvent")
        .await;
    let dlq = broker.bindings.subscribes[0].dead_letter_queue.clone();
    let start = std::time::Instant::now();
    while broker.depth(&dlq).await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "nothing dead-lettered:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        worker
            .metric("eventflow_messages_total{outcome=\"retried\"}")
            .await,
        2.0
    );
    assert_eq!(
        worker
            .metric("eventflow_messages_total{outcome=\"dead_lettered\"}")
            .await,
        1.0
    );
    // Two retries went through the retry queue before the third attempt failed.
    assert_eq!(
        broker.dead_letter_attempts().await.as_deref(),
        Some("LongUInt(2)")
    );
    assert_eq!(broker.depth(&broker.bindings.subscribes[0].queue).await, 0);
    assert_reaches_active_with_a_linked_event_log(&web, &worker, "after-poison@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn the_web_role_takes_commands_and_stays_ready_while_the_broker_is_down() {
    let broker = Broker::prepared(5, 200).await;
    let store = fresh_sqlite();
    let env = broker.env(&store);
    let mut down = env.clone();
    down.retain(|(k, _)| *k != "EVENTFLOW_BROKER_URI");
    // Held for the whole test and never listened on: every connection is refused.
    let no_broker = ReservedPort::new();
    down.push((
        "EVENTFLOW_BROKER_URI",
        format!("amqp://guest:guest@{}/%2f", no_broker.addr()),
    ));
    let mut web = AppProcess::spawn(BIN, "web", &down);
    web.wait_live(READY_TIMEOUT).await;
    let created = create(&web, "no-broker@example.com").await;
    let readyz = reqwest::get(format!("{}/readyz", web.admin)).await.unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(
        readyz.text().await.unwrap(),
        "ready; broker unreachable, events wait in the outbox"
    );
    assert!(
        web.terminate(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        web.log_text()
    );

    let mut web = AppProcess::spawn(BIN, "web", &env);
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    web.wait_ready(READY_TIMEOUT).await;
    worker.wait_ready(READY_TIMEOUT).await;
    let id = created["accountId"].as_str().unwrap();
    let url = format!("{}/v1/accounts/{id}", web.http);
    wait_status(&url, "ACTIVE", ACTIVE_TIMEOUT, &[&web, &worker]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn accounts_in_flight_at_sigterm_all_become_active_after_a_restart() {
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("POD_NAMESPACE", unique_namespace()),
        ("DATABASE_URL", fresh_sqlite()),
    ];
    // The restart keeps the ports: events already on the broker link to them.
    let ports = Ports::reserve();
    let mut all = AppProcess::spawn_on(BIN, "all", &env, &ports);
    all.wait_ready(READY_TIMEOUT).await;
    let mut urls = Vec::new();
    for i in 0..20 {
        let a = create(&all, &format!("inflight{i}@example.com")).await;
        urls.push(a["_links"]["self"]["href"].as_str().unwrap().to_owned());
    }
    let status = all.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "no clean exit:\n{}",
        all.log_text()
    );

    let mut again = AppProcess::spawn_on(BIN, "all", &env, &ports);
    again.wait_ready(READY_TIMEOUT).await;
    for url in &urls {
        wait_status(url, "ACTIVE", ACTIVE_TIMEOUT, &[&again]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn a_worker_that_cannot_reach_the_web_role_retries_in_process_until_it_can_without_spending_attempts()
 {
    let broker = Broker::prepared(20, 300).await;
    let env = broker.env(&fresh_sqlite());
    let ports = Ports::reserve();
    let mut web = AppProcess::spawn_on(BIN, "web", &env, &ports);
    web.wait_ready(READY_TIMEOUT).await;
    let created = create(&web, "patient@example.com").await;
    let url = created["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    broker
        .next_tapped("ACCOUNT_CREATED", created["accountId"].as_str().unwrap())
        .await;
    assert!(
        web.terminate(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );

    // The event waits in the queue; the worker finds nobody at its links
    // (connection refused: unavailable, not a failed attempt) and holds it.
    let mut worker = AppProcess::spawn(BIN, "worker", &env);
    worker.wait_ready(READY_TIMEOUT).await;
    let start = std::time::Instant::now();
    while worker
        .metric("eventflow_messages_total{outcome=\"transient_retry\"}")
        .await
        < 2.0
    {
        assert!(
            start.elapsed() < ACTIVE_TIMEOUT,
            "no retries:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut web = AppProcess::spawn_on(BIN, "web", &env, &ports);
    web.wait_ready(READY_TIMEOUT).await;
    wait_status(&url, "ACTIVE", ACTIVE_TIMEOUT, &[&web, &worker]).await;
    for outcome in ["dead_lettered", "retried"] {
        assert_eq!(
            worker
                .metric(&format!(
                    "eventflow_messages_total{{outcome=\"{outcome}\"}}"
                ))
                .await,
            0.0,
            "{outcome}: no attempt spent"
        );
    }
}
