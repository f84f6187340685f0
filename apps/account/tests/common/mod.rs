//! Shared by the integration tests: the in-process API ([`api`]), the broker
//! as the operator would prepare it with a tap on the account destination,
//! and helpers to drive the account binary in each packaging.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod api;

use std::time::{Duration, Instant};

use eventflow_contract::{
    Bindings, Topology, bindings::SubscriptionRequest, declare::declare, names::ATTEMPT_HEADER,
};
use eventflow_runtime::{
    cloudevent::CloudEvent,
    testing::{AppProcess, amqp_uri, unique_namespace},
};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_account");

/// A broker namespace prepared like the operator does, with a tap queue
/// that receives a copy of every account event.
pub struct Broker {
    pub namespace: String,
    pub bindings: Bindings,
    pub channel: Channel,
    pub tap: String,
    _connection: Connection,
}

impl Broker {
    pub async fn prepared(max_attempts: u32, backoff_ms: u32) -> Self {
        let namespace = unique_namespace();
        let bindings = Bindings::standalone(
            &namespace,
            &["account"],
            &[SubscriptionRequest {
                destination: "account",
                group: "account-worker",
                routing_keys: vec!["account.*".into()],
                max_attempts,
                backoff_ms,
            }],
        );
        let connection = Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        declare(&channel, &Topology::of(&bindings), false)
            .await
            .unwrap();
        let tap = format!("{namespace}.tap");
        let options = QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        channel
            .queue_declare(tap.as_str().into(), options, FieldTable::default())
            .await
            .unwrap();
        let exchange = bindings.exchange_for("account").unwrap().to_owned();
        channel
            .queue_bind(
                tap.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            namespace,
            bindings,
            channel,
            tap,
            _connection: connection,
        }
    }

    pub fn exchange(&self) -> String {
        self.bindings.exchange_for("account").unwrap().to_owned()
    }

    /// The env of an app deployed by the operator on this namespace.
    pub fn env(&self, database_url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("EVENTFLOW_BROKER_URI", amqp_uri()),
            ("EVENTFLOW_BINDINGS", self.bindings.to_json()),
            ("DATABASE_URL", database_url.to_owned()),
        ]
    }

    /// Publishes raw bytes to the account exchange.
    pub async fn publish(&self, routing_key: &str, body: &[u8]) {
        self.channel
            .basic_publish(
                self.exchange().as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_content_type("application/cloudevents+json".into()),
            )
            .await
            .unwrap();
    }

    /// Waits for the next CloudEvent on the tap matching `event_type` and `subject`.
    pub async fn next_tapped(&self, event_name: &str, subject: &str) -> CloudEvent {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            match self
                .channel
                .basic_get(self.tap.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => {
                    let ce: CloudEvent = serde_json::from_slice(&m.delivery.data).unwrap();
                    if ce.event_name() == event_name && ce.subject.as_deref() == Some(subject) {
                        return ce;
                    }
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("no {event_name} for {subject} on the tap");
    }

    /// Messages now in a queue.
    pub async fn depth(&self, queue: &str) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        // A passive declare with other arguments would fail; the name is enough.
        let conn = Connection::connect(&amqp_uri(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .unwrap();
        let _ = conn.close(200, "bye".into()).await;
        q.message_count()
    }

    /// The attempt header of the first dead-lettered message.
    pub async fn dead_letter_attempts(&self) -> Option<String> {
        let dlq = self.bindings.subscribes[0].dead_letter_queue.clone();
        let m = self
            .channel
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()?;
        let headers = m.delivery.properties.headers().clone()?;
        headers
            .inner()
            .get(ATTEMPT_HEADER)
            .map(|v| format!("{v:?}"))
    }
}

pub async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

pub async fn create(web: &AppProcess, email: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/accounts", web.http))
        .json(&json!({ "firstName": "Ada", "lastName": "Lovelace", "email": email }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// Polls the resource until `status` (panics after `timeout` with the logs).
pub async fn wait_status(
    resource_url: &str,
    status: &str,
    timeout: Duration,
    logs: &[&AppProcess],
) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < timeout {
        if let Ok(r) = reqwest::get(resource_url).await
            && let Ok(v) = r.json::<Value>().await
        {
            if v["status"] == status {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs: Vec<String> = logs.iter().map(|p| p.log_text()).collect();
    panic!(
        "{resource_url} not {status} after {timeout:?}; last {last}\n{}",
        logs.join("\n----\n")
    );
}

pub async fn event_types(account: &Value) -> Vec<String> {
    let log = get(account["_links"]["events"]["href"].as_str().unwrap()).await;
    log["_embedded"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

pub const ACTIVE_TIMEOUT: Duration = Duration::from_secs(20);
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The events of an account the worker made ACTIVE, in order.
pub const LIFECYCLE: [&str; 4] = [
    "ACCOUNT_CREATED",
    "ACCOUNT_PENDING",
    "ACCOUNT_CONFIRMED",
    "ACCOUNT_ACTIVATED",
];

pub async fn assert_reaches_active_with_a_linked_event_log(
    web: &AppProcess,
    worker: &AppProcess,
    email: &str,
) -> Value {
    let created = create(web, email).await;
    let url = created["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let active = wait_status(&url, "ACTIVE", ACTIVE_TIMEOUT, &[web, worker]).await;
    let log = get(active["_links"]["events"]["href"].as_str().unwrap()).await;
    let events = log["_embedded"]["events"].as_array().unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, LIFECYCLE);
    for e in events {
        assert!(
            e["_links"]["self"]["href"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{url}/events/")),
            "{e}"
        );
        assert_eq!(e["_links"]["account"]["href"], url);
    }
    active
}
