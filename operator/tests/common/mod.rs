//! Helpers of the integration tests (tier 2): a client for the real API
//! server, the real RabbitMQ's URI, a fresh namespace per test and an
//! in-process operator watching only that namespace. A missing service
//! address fails the test loudly.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod spring;

use std::{future::Future, time::Duration};

use eventflow_operator::{
    api::{AppRegistration, DeadLetterRedrive, EventBroker, Stream},
    context::Settings,
    leader::LeaseConfig,
    run::{Config, run},
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Container, Namespace, Secret},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{conditions, wait::await_condition},
};
use serde_json::json;

pub fn require_env(var: &str, how: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs {how}. Run it through `make test`, or `eval \"$(e2e/cluster/services.sh env)\"; eval \"$(e2e/cluster/control-plane.sh env)\"` first."
        ),
    }
}

pub async fn client() -> Client {
    require_env("KUBECONFIG", "the control-plane-only kube-apiserver");
    Client::try_default()
        .await
        .expect("a client from KUBECONFIG")
}

pub fn amqp_uri() -> String {
    require_env("EVENTFLOW_TEST_AMQP_URI", "the private RabbitMQ")
}

/// Whether queue `name` exists on the broker at `uri` (a passive declare on a fresh connection).
pub async fn queue_exists(uri: &str, name: &str) -> bool {
    use lapin::{
        Connection, ConnectionProperties, options::QueueDeclareOptions, types::FieldTable,
    };
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let exists = ch
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
        .is_ok();
    let _ = conn.close(200, "bye".into()).await;
    exists
}

/// Installs (server-side applies) every CRD and waits until they are established.
pub async fn install_crds(client: &Client) {
    for crd in [
        Stream::crd(),
        EventBroker::crd(),
        AppRegistration::crd(),
        DeadLetterRedrive::crd(),
    ] {
        install_crd(client, &crd).await;
    }
}

/// Server-side applies one CRD and waits (30 s at most) until it is established.
pub async fn install_crd(client: &Client, crd: &CustomResourceDefinition) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().unwrap();
    api.patch(
        &name,
        &PatchParams::apply("eventflow-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api.clone(), &name, conditions::is_crd_established()),
    )
    .await
    .unwrap_or_else(|_| panic!("CRD {name} established within 30 s"))
    .unwrap();
}

/// A fresh connection to the private RabbitMQ and a channel on it.
pub async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(&amqp_uri(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// Publishes `n` persistent messages straight to queue `queue` (default exchange).
pub async fn put_messages(ch: &lapin::Channel, queue: &str, n: usize) {
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions::default(),
            format!("message {i}").as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

/// A new namespace `<prefix>-<random>`, so tests run in parallel and re-run on a dirty server.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).unwrap();
    let name = format!(
        "{prefix}-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

/// A Secret `rabbit-uri` with key `uri` (and `host`, `port`, `username`,
/// `password`, as Spring apps need) and an external EventBroker `rabbit` using it.
pub async fn external_broker(client: &Client, ns: &str, uri: &str) {
    let parsed: lapin::uri::AMQPUri = uri.parse().expect("an AMQP URI");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "rabbit-uri"},
        "stringData": {
            "uri": uri,
            "host": parsed.authority.host,
            "port": parsed.authority.port.to_string(),
            "username": parsed.authority.userinfo.username,
            "password": parsed.authority.userinfo.password,
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let broker: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit"},
        "spec": {"external": {"connectionSecret": {"name": "rabbit-uri"}}}
    }))
    .unwrap();
    Api::<EventBroker>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &broker)
        .await
        .unwrap();
}

/// Adds the private RabbitMQ's management API (`managementUri`) to the
/// Secret of the external broker `rabbit` of `ns` ([`external_broker`]).
pub async fn with_management_api(client: &Client, ns: &str) {
    let management = require_env(
        "EVENTFLOW_TEST_MANAGEMENT_URI",
        "the private RabbitMQ's management API (services.sh up enables it)",
    );
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            "rabbit-uri",
            &PatchParams::default(),
            &Patch::Merge(&json!({"stringData": {"managementUri": management}})),
        )
        .await
        .unwrap();
}

/// A Stream `name` with app `account` (web + worker, publishes and consumes
/// `account` for `account.*`) and app `audit` (worker of `account`, all events).
pub fn shop_stream(name: &str) -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": name},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "account", "image": "eventflow/account:0.1.0", "web": {}, "worker": {},
             "publishes": ["account"],
             "subscribes": [{"destination": "account", "eventTypes": ["account.*"], "backoffMs": 200}]},
            {"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
             "subscribes": [{"destination": "account", "group": format!("{name}-audit")}]}
        ]}
    }))
    .unwrap()
}

/// A fresh namespace `<prefix>-<random>` with the external EventBroker
/// `rabbit` on the real RabbitMQ, and an operator watching it.
pub async fn operator_on_external_broker(prefix: &str) -> (Client, String, Operator) {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, prefix).await;
    external_broker(&client, &ns, &amqp_uri()).await;
    let operator = Operator::start(&client, &ns, test_settings()).await;
    (client, ns, operator)
}

/// The benchmarks' Stream `bench` in `ns` (on its EventBroker `rabbit`):
/// `apps` worker apps (with a web role too when `web`) in a ring, each
/// publishing `d<i>` and consuming `d<i+1>`; with the broker's wiring.
pub async fn bench_stream(
    client: &Client,
    ns: &str,
    apps: usize,
    web: bool,
) -> (Stream, eventflow_operator::connection::BrokerWiring) {
    let apps: Vec<_> = (0..apps)
        .map(|i| {
            let mut app = json!({"name": format!("app{i}"), "image": "eventflow/x:0.1.0", "worker": {},
                                 "publishes": [format!("d{i}")],
                                 "subscribes": [{"destination": format!("d{}", (i + 1) % apps)}]});
            if web {
                app["web"] = json!({});
            }
            app
        })
        .collect();
    let stream: Stream = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "bench"},
        "spec": {"broker": "rabbit", "apps": apps}
    }))
    .unwrap();
    let stream = Api::<Stream>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    let broker = Api::<EventBroker>::namespaced(client.clone(), ns)
        .get("rabbit")
        .await
        .unwrap();
    (
        stream,
        eventflow_operator::connection::broker_wiring(&broker),
    )
}

/// Settings that keep tests short where waiting proves nothing.
pub fn test_settings() -> Settings {
    Settings {
        amqp_timeout: Duration::from_secs(2),
        cleanup_give_up: Duration::from_secs(8),
        ..Settings::default()
    }
}

/// An operator running in this process, watching only `ns`; stopped on drop.
pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    pub async fn start(client: &Client, ns: &str, settings: Settings) -> Self {
        Self::start_on(client, ns, settings, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Like [`Operator::start`], with the admin endpoints (`/metrics`) on `admin_addr`.
    pub async fn start_on(
        client: &Client,
        ns: &str,
        settings: Settings,
        admin_addr: std::net::SocketAddr,
    ) -> Self {
        // The operator's logs land in the test's captured output, shown when it fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,eventflow_operator=info",
            ))
            .try_init();
        let config = Config {
            namespace: Some(ns.to_owned()),
            lease: LeaseConfig::new(ns, "eventflow-operator", &format!("test-{ns}")),
            admin_addr,
            settings,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(run(client.clone(), config, async move {
            let _ = rx.await;
        }));
        Self {
            stop: Some(tx),
            handle,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let handle = std::mem::replace(&mut self.handle, tokio::spawn(async { Ok(()) }));
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Polls `probe` every 250 ms until it returns `Some`, or panics after `timeout` saying `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Leaves the server as the test found it: deletes the namespace's Streams
/// (while the operator still runs, so their finalizers delete their broker
/// topology), then its Services (control-plane mode has no namespace
/// controller, and ClusterIPs are scarce), Deployments and the namespace.
pub async fn teardown(client: &Client, ns: &str) {
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
    use kube::api::{DeleteParams, ListParams};
    let streams = Api::<Stream>::namespaced(client.clone(), ns);
    streams
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = streams.list(&ListParams::default()).await.unwrap().items;
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Streams of {ns} not deleted within 60 s: {:?}",
            left.iter()
                .map(|s| (
                    s.metadata.name.clone(),
                    s.metadata.finalizers.clone(),
                    s.status.clone()
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Api::<Service>::namespaced(client.clone(), ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// The (only) container of a Deployment's pod template.
pub fn container(d: &Deployment) -> &Container {
    &d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}
