//! Tier 2: Spring Cloud Stream apps as Stream apps, against the real
//! kube-apiserver and the real RabbitMQ. The Deployments carry exactly the
//! Spring properties README ("What the operator sets on a Spring app")
//! documents, and real Spring apps (apps/spring, `make spring-apps`) run
//! with that environment accept the topology the operator declared: they
//! consume from and publish to it without declaring anything of their own,
//! and a poison message ends in the group's DLQ after `maxAttempts`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, container, eventually, queue_exists, spring::SpringApp};
use eventflow_operator::api::Stream;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client, api::PostParams};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ExchangeDeclareOptions},
    types::FieldTable,
};
use serde_json::{Value, json};

async fn setup(prefix: &str) -> (Client, String, Operator) {
    common::operator_on_external_broker(prefix).await
}

/// Data Flow's `time | log` plus a processor with two functions.
fn ticktock() -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "ticktock"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "time", "image": "eventflow/spring-time-source:dev", "worker": {},
             "spring": {"outputs": [{"destination": "ticks"}],
                        "properties": {"spring.integration.poller.fixed-delay": "200"}}},
            {"name": "log", "image": "eventflow/spring-count-sink:dev",
             "worker": {"prefetch": 5, "concurrency": 2},
             "spring": {"properties": {"logging.level.root": "WARN"}},
             "subscribes": [{"destination": "ticks", "maxAttempts": 3, "backoffMs": 100}]},
            {"name": "transform", "image": "eventflow/spring-transform-processor:dev", "worker": {},
             "spring": {"functionDefinition": "uppercase;reverse",
                        "outputs": [{"binding": "uppercase-out-0", "destination": "upper"},
                                    {"binding": "reverse-out-0", "destination": "reversed"}]},
             "subscribes": [{"destination": "ticks", "binding": "uppercase-in-0"},
                            {"destination": "ticks", "binding": "reverse-in-0", "group": "reverse"}]}
        ]}
    }))
    .unwrap()
}

async fn deploy(client: &Client, ns: &str, stream: &Stream) {
    Api::<Stream>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), stream)
        .await
        .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    for app in ["time", "log", "transform"] {
        let name = format!("ticktock-{app}-worker");
        eventually(
            Duration::from_secs(60),
            &format!("Deployment {name}"),
            || {
                let d = deployments.clone();
                let name = name.clone();
                async move { d.get_opt(&name).await.unwrap() }
            },
        )
        .await;
    }
}

fn spring_json(d: &Deployment) -> (Vec<(String, Option<String>)>, Value) {
    let c = container(d);
    let env = c.env.clone().unwrap();
    let refs = env
        .iter()
        .map(|v| {
            let key = v
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .map(|r| format!("{}/{}", r.name, r.key));
            (v.name.clone(), key)
        })
        .collect();
    let json = env
        .iter()
        .find(|v| v.name == "SPRING_APPLICATION_JSON")
        .and_then(|v| v.value.as_deref())
        .unwrap();
    (refs, serde_json::from_str(json).unwrap())
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_spring_apps_pods_get_exactly_the_documented_properties_and_the_operator_declares_the_topology()
 {
    let (client, ns, operator) = setup("spring-props").await;
    deploy(&client, &ns, &ticktock()).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);

    let log = deployments.get("ticktock-log-worker").await.unwrap();
    let (env, props) = spring_json(&log);
    let secret = |k: &str| Some(format!("rabbit-uri/{k}"));
    assert_eq!(
        env,
        vec![
            ("SPRING_RABBITMQ_HOST".into(), secret("host")),
            ("SPRING_RABBITMQ_PORT".into(), secret("port")),
            ("SPRING_RABBITMQ_USERNAME".into(), secret("username")),
            ("SPRING_RABBITMQ_PASSWORD".into(), secret("password")),
            ("SPRING_RABBITMQ_VIRTUAL_HOST".into(), secret("vhost")),
            ("SPRING_APPLICATION_JSON".into(), None),
        ]
    );
    let input = "spring.cloud.stream.bindings.input";
    let rabbit = "spring.cloud.stream.rabbit.bindings.input.consumer";
    let mut expected = serde_json::Map::new();
    for (k, v) in [
        ("logging.level.root", "WARN".to_owned()),
        (
            "management.endpoint.health.group.readiness.include",
            "readinessState,rabbit".into(),
        ),
        ("management.endpoint.health.probes.enabled", "true".into()),
        (
            "management.endpoint.health.validate-group-membership",
            "false".into(),
        ),
        ("management.server.port", "9090".into()),
        (&format!("{input}.destination"), format!("{ns}.ticks")),
        (&format!("{input}.group"), "log".into()),
        (&format!("{input}.consumer.maxAttempts"), "3".into()),
        (
            &format!("{input}.consumer.backOffInitialInterval"),
            "100".into(),
        ),
        (
            &format!("{input}.consumer.backOffMaxInterval"),
            "100".into(),
        ),
        (&format!("{input}.consumer.backOffMultiplier"), "1.0".into()),
        (&format!("{input}.consumer.concurrency"), "2".into()),
        (&format!("{rabbit}.prefetch"), "5".into()),
        (&format!("{rabbit}.declareExchange"), "false".into()),
        (&format!("{rabbit}.bindQueue"), "false".into()),
        (&format!("{rabbit}.autoBindDlq"), "false".into()),
        (&format!("{rabbit}.republishToDlq"), "false".into()),
        (&format!("{rabbit}.requeueRejected"), "false".into()),
        (
            &format!("{rabbit}.deadLetterExchange"),
            format!("{ns}.ticks.log.dlx"),
        ),
    ] {
        expected.insert(k.to_owned(), Value::String(v));
    }
    assert_eq!(props, Value::Object(expected));

    let container = container(&log);
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(path(&container.liveness_probe), "/actuator/health/liveness");
    assert_eq!(
        path(&container.readiness_probe),
        "/actuator/health/readiness"
    );
    assert_eq!(path(&container.startup_probe), "/actuator/health/liveness");

    // Outputs and several functions: the processor's bindings.
    let (_, transform) = spring_json(&deployments.get("ticktock-transform-worker").await.unwrap());
    assert_eq!(
        transform["spring.cloud.function.definition"],
        "uppercase;reverse"
    );
    let b = "spring.cloud.stream.bindings";
    assert_eq!(transform[format!("{b}.uppercase-in-0.group")], "transform");
    assert_eq!(transform[format!("{b}.reverse-in-0.group")], "reverse");
    assert_eq!(
        transform[format!("{b}.uppercase-out-0.destination")],
        format!("{ns}.upper")
    );
    assert_eq!(
        transform[format!("{b}.reverse-out-0.destination")],
        format!("{ns}.reversed")
    );
    assert_eq!(
        transform["spring.cloud.stream.rabbit.bindings.reverse-out-0.producer.declareExchange"],
        "false"
    );

    // The operator declared every group queue and DLQ; a Spring group has no retry queue.
    let uri = common::amqp_uri();
    for q in [
        "ticks.log",
        "ticks.log.dlq",
        "ticks.transform",
        "ticks.reverse.dlq",
    ] {
        let q = format!("{ns}.{q}");
        eventually(Duration::from_secs(30), &format!("queue {q}"), || {
            let (uri, q) = (uri.clone(), q.clone());
            async move { queue_exists(&uri, &q).await.then_some(()) }
        })
        .await;
    }
    assert!(!queue_exists(&uri, &format!("{ns}.ticks.log.retry")).await);

    common::teardown(&client, &ns).await;
    operator.stop().await;
}

async fn publish(uri: &str, exchange: &str, body: &[u8]) {
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        exchange.into(),
        "anything".into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default().with_content_type("text/plain".into()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

async fn dead_letters(uri: &str, queue: &str) -> Vec<String> {
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    conn.close(200, "done".into()).await.unwrap();
    out
}

/// Deletes exchange `name` if it exists (a binder run by hand with its
/// defaults leaves a `DLX` behind on a shared broker).
async fn delete_exchange(uri: &str, name: &str) {
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_delete(name.into(), Default::default())
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
}

async fn exchange_exists(uri: &str, name: &str) -> bool {
    let conn = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let exists = ch
        .exchange_declare(
            name.into(),
            lapin::ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = conn.close(200, "done".into()).await;
    exists
}

#[tokio::test]
#[ignore = "needs kube-apiserver, rabbitmq and the Spring example jars"]
async fn real_spring_apps_run_on_the_operators_topology_and_a_poison_message_ends_in_the_dlq() {
    let (client, ns, operator) = setup("spring-run").await;
    deploy(&client, &ns, &ticktock()).await;
    let uri = common::amqp_uri();
    eventually(Duration::from_secs(30), "the topology", || {
        let (uri, q) = (uri.clone(), format!("{ns}.ticks.log.dlq"));
        async move { queue_exists(&uri, &q).await.then_some(()) }
    })
    .await;

    delete_exchange(&uri, "DLX").await;
    // The sink and the source, each with its Deployment's environment.
    let sink_env = common::spring::deployment_env(&client, &ns, "ticktock-log-worker").await;
    let time_env = common::spring::deployment_env(&client, &ns, "ticktock-time-worker").await;
    let mut sink = SpringApp::start("count-sink", &sink_env);
    let mut time = SpringApp::start("time-source", &time_env);
    sink.wait_ready(Duration::from_secs(120)).await;
    time.wait_ready(Duration::from_secs(120)).await;

    // Ticks flow from the source through the operator's exchange and group queue.
    eventually(
        Duration::from_secs(60),
        "the sink counting the source's ticks",
        || {
            let sink = &sink;
            async move {
                let n = sink.endpoint("sink").await["received"]
                    .as_u64()
                    .unwrap_or(0);
                (n >= 5).then_some(())
            }
        },
    )
    .await;
    drop(time);

    // A poison message is tried maxAttempts (3) times, then dead-lettered
    // by the group queue into the operator's DLQ; the next message is served.
    let before = sink.endpoint("sink").await;
    let exchange = format!("{ns}.ticks");
    publish(&uri, &exchange, b"poison pill").await;
    publish(&uri, &exchange, b"the next message").await;
    let dlq = format!("{ns}.ticks.log.dlq");
    let dead = eventually(
        Duration::from_secs(60),
        "the poison message in the DLQ",
        || {
            let (uri, dlq) = (uri.clone(), dlq.clone());
            async move {
                let d = dead_letters(&uri, &dlq).await;
                (!d.is_empty()).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(dead, vec!["poison pill".to_owned()]);
    eventually(
        Duration::from_secs(30),
        "the message after the poison",
        || {
            let sink = &sink;
            async move { (sink.endpoint("sink").await["last"] == "the next message").then_some(()) }
        },
    )
    .await;
    let after = sink.endpoint("sink").await;
    assert_eq!(
        after["failedAttempts"].as_u64().unwrap() - before["failedAttempts"].as_u64().unwrap(),
        3,
        "{before} -> {after}"
    );

    // The apps declared nothing of their own: no binder default DLX, no
    // precondition failures against the operator's queues.
    assert!(
        !exchange_exists(&uri, "DLX").await,
        "the binder declared its default DLX"
    );
    let log = sink.log_text();
    assert!(!log.contains("PRECONDITION_FAILED"), "{log}");
    drop(sink);

    common::teardown(&client, &ns).await;
    operator.stop().await;
}
