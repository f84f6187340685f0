//! The example system's broker as a test reaches it: an AMQP connection
//! through a port-forward to `rabbit-0` with the credentials of the
//! EventBroker's Secret, and the passive checks and publishes the tests make.

use std::collections::BTreeMap;

use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties, ExchangeKind,
    options::{BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueDeclareOptions},
    types::FieldTable,
};

use k8s_openapi::api::core::v1::Secret;

use crate::{forward::port_forward, install::EXAMPLES_NS};

/// The name of the examples' EventBroker, and of every managed broker the
/// tests make in namespaces of their own.
pub const BROKER: &str = "rabbit";

/// The EventBrokers of the examples' namespace, as dynamic objects.
pub fn example_brokers(client: &Client) -> Api<DynamicObject> {
    brokers_in(client, EXAMPLES_NS)
}

/// The EventBrokers of `namespace`, as dynamic objects.
pub fn brokers_in(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("eventflow.dev", "v1alpha1", "EventBroker");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Every queue of the managed broker `broker` in `namespace` with the
/// messages it holds (ready and unacknowledged).
pub async fn broker_queues(
    client: &Client,
    http: &reqwest::Client,
    namespace: &str,
    broker: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let queues = management_get(
        client,
        http,
        namespace,
        broker,
        "/api/queues?columns=name,messages",
    )
    .await?;
    Ok(queues
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| {
            let name = q["name"].as_str()?.to_owned();
            Some((name, q["messages"].as_u64().unwrap_or(0)))
        })
        .collect())
}

/// A GET of the RabbitMQ management API of the managed broker `broker` in
/// `namespace` (`<broker>-0` through a port-forward, with the credentials
/// of the EventBroker's Secret).
pub async fn management_get(
    client: &Client,
    http: &reqwest::Client,
    namespace: &str,
    broker: &str,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    let eb = brokers_in(client, namespace).get(broker).await?;
    let secret = eb.data["status"]["credentialsSecret"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("EventBroker {broker} has no credentialsSecret yet"))?
        .to_owned();
    let data = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&secret)
        .await?
        .data
        .unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| anyhow::anyhow!("Secret {secret} has no {k}"))
    };
    let local = port_forward(
        Api::namespaced(client.clone(), namespace),
        &format!("{broker}-0"),
        15672,
    )
    .await?;
    let r = http
        .get(format!("http://{local}{path}"))
        .basic_auth(text("username")?, Some(text("password")?))
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "GET {path} of {broker}-0: {}",
        r.status()
    );
    Ok(r.json().await?)
}

/// An AMQP connection to the example broker as its administrator (the
/// credentials Secret in its status), through a port-forward.
pub async fn broker_connection(client: &Client) -> Connection {
    let broker = example_brokers(client).get(BROKER).await.unwrap();
    let secret = broker.data["status"]["credentialsSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    connect_as(client, &secret).await
}

/// An AMQP connection to the example broker as the broker user of one
/// app, from its Secret `<stream>-<app>-broker` (through a port-forward).
pub async fn app_broker_connection(client: &Client, stream: &str, app: &str) -> Connection {
    connect_as(client, &format!("{stream}-{app}-broker")).await
}

/// Connects to the example broker's first node as the user of the
/// examples' Secret `secret` (its keys `username` and `password`).
async fn connect_as(client: &Client, secret: &str) -> Connection {
    let data = Api::<Secret>::namespaced(client.clone(), EXAMPLES_NS)
        .get(secret)
        .await
        .unwrap_or_else(|e| panic!("Secret {secret}: {e}"))
        .data
        .unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    let local = port_forward(
        Api::namespaced(client.clone(), EXAMPLES_NS),
        "rabbit-0",
        5672,
    )
    .await
    .unwrap();
    let uri = format!(
        "amqp://{}:{}@{local}/%2f",
        text("username"),
        text("password")
    );
    Connection::connect(&uri, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("log in as {}: {e}", text("username")))
}

pub async fn queue_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.queue_declare(name.into(), passive, FieldTable::default())
        .await
        .is_ok()
}

pub async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Topic,
        passive,
        FieldTable::default(),
    )
    .await
    .is_ok()
}

/// Publishes `body` as text to `exchange` with routing key `key`, confirmed.
pub async fn publish_text(conn: &Connection, exchange: &str, key: &str, body: &str) {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default().with_content_type("text/plain".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

/// Takes every message of `queue` (acknowledged), as text.
pub async fn drain_queue(conn: &Connection, queue: &str) -> Vec<String> {
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

/// Asserts that none of `queues` and `exchanges` (names under [`EXAMPLES_NS`],
/// without its prefix) is on the broker any more.
pub async fn assert_removed(conn: &Connection, queues: &[&str], exchanges: &[&str]) {
    for q in queues {
        let q = format!("{EXAMPLES_NS}.{q}");
        assert!(!queue_exists(conn, &q).await, "{q} is still on the broker");
    }
    for e in exchanges {
        let e = format!("{EXAMPLES_NS}.{e}");
        assert!(
            !exchange_exists(conn, &e).await,
            "{e} is still on the broker"
        );
    }
}
