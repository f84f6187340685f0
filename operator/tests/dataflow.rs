//! Tier 2: Streams written as Data Flow definitions, against the real
//! kube-apiserver and the real RabbitMQ. A definition expands into exactly
//! the Deployments, environment and queues of its YAML twin; a definition
//! that does not parse, or names an app nobody registered, fails the Stream
//! with the problem (and its position) in the Ready condition and an Event,
//! and deploys nothing; registering the app later deploys it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, eventually, queue_exists};
use eventflow_operator::api::{AppRegistration, Stream, StreamPhase};
use k8s_openapi::api::{apps::v1::Deployment, events::v1::Event};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};

async fn setup(prefix: &str) -> (Client, String, Operator) {
    common::operator_on_external_broker(prefix).await
}

async fn register(client: &Client, ns: &str, name: &str, spec: Value) {
    let r: AppRegistration = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "AppRegistration",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap();
    Api::<AppRegistration>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
}

/// Data Flow's three example apps (apps/spring), registered as examples/dataflow does.
async fn register_ticktock_apps(client: &Client, ns: &str) {
    for (name, image) in [
        ("source.time", "eventflow/spring-time-source:dev"),
        (
            "processor.transform",
            "eventflow/spring-transform-processor:dev",
        ),
        ("sink.log", "eventflow/spring-count-sink:dev"),
    ] {
        register(client, ns, name, json!({"image": image})).await;
    }
}

async fn create(client: &Client, ns: &str, stream: Value) {
    let s: Stream = serde_json::from_value(stream).unwrap();
    Api::<Stream>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

fn stream(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
           "metadata": {"name": name}, "spec": spec})
}

/// What the Stream deployed, with the namespace written as `NS`: every
/// Deployment's name and pod template, and the destinations of its status.
async fn deployed(client: &Client, ns: &str, name: &str) -> (Vec<(String, Value)>, Value) {
    let streams = Api::<Stream>::namespaced(client.clone(), ns);
    let status = eventually(
        Duration::from_secs(60),
        &format!("{ns}/{name} with its topology declared"),
        || async {
            let s = streams.get(name).await.ok()?.status?;
            let topology = s
                .conditions
                .iter()
                .any(|c| c.type_ == "TopologyReady" && c.status == "True");
            (topology && s.workloads.len() == 3).then_some(s)
        },
    )
    .await;
    let normalize =
        |v: Value| -> Value { serde_json::from_str(&v.to_string().replace(ns, "NS")).unwrap() };
    let mut deployments: Vec<(String, Value)> = Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            let template = serde_json::to_value(&d.spec.unwrap().template).unwrap();
            (d.metadata.name.unwrap(), normalize(template))
        })
        .collect();
    deployments.sort_by(|a, b| a.0.cmp(&b.0));
    let destinations = normalize(serde_json::to_value(&status.destinations).unwrap());
    (deployments, destinations)
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_definition_expands_into_the_same_deployments_env_and_queues_as_its_yaml_twin() {
    let (client, dsl_ns, dsl_operator) = setup("dsl-twin").await;
    let (_, yaml_ns, yaml_operator) = setup("yaml-twin").await;

    register_ticktock_apps(&client, &dsl_ns).await;
    create(
        &client,
        &dsl_ns,
        stream(
            "ticktock",
            json!({
                "broker": "rabbit",
                "definition": "time | transform --expression=payload.toUpperCase() | log",
                "deploymentProperties": {
                    "deployer.log.count": "2",
                    "deployer.*.kubernetes.limits.memory": "384Mi",
                    "deployer.transform.kubernetes.requests.cpu": "50m",
                    "app.time.spring.integration.poller.fixed-delay": "200",
                },
            }),
        ),
    )
    .await;
    // The same system written out: Data Flow's destinations <stream>.<label>
    // (here <stream>-<label>), every consumer in group <stream>.
    create(
        &client,
        &yaml_ns,
        stream(
            "ticktock",
            json!({"broker": "rabbit", "apps": [
                {"name": "time", "image": "eventflow/spring-time-source:dev",
                 "worker": {}, "resources": {"limits": {"memory": "384Mi"}},
                 "spring": {"outputs": [{"destination": "ticktock-time"}],
                            "properties": {"spring.integration.poller.fixed-delay": "200"}}},
                {"name": "transform", "image": "eventflow/spring-transform-processor:dev",
                 "worker": {}, "resources": {"limits": {"memory": "384Mi"}, "requests": {"cpu": "50m"}},
                 "subscribes": [{"destination": "ticktock-time", "group": "ticktock"}],
                 "spring": {"outputs": [{"destination": "ticktock-transform"}],
                            "properties": {"expression": "payload.toUpperCase()"}}},
                {"name": "log", "image": "eventflow/spring-count-sink:dev",
                 "worker": {"replicas": 2}, "resources": {"limits": {"memory": "384Mi"}},
                 "subscribes": [{"destination": "ticktock-transform", "group": "ticktock"}],
                 "spring": {}},
            ]}),
        ),
    )
    .await;

    let (dsl, dsl_destinations) = deployed(&client, &dsl_ns, "ticktock").await;
    let (yaml, yaml_destinations) = deployed(&client, &yaml_ns, "ticktock").await;
    let names: Vec<&str> = dsl.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ticktock-log-worker",
            "ticktock-time-worker",
            "ticktock-transform-worker"
        ]
    );
    for ((name, a), (_, b)) in dsl.iter().zip(&yaml) {
        assert_eq!(a, b, "{name}: the pod templates differ");
    }
    assert_eq!(dsl, yaml);
    assert_eq!(dsl_destinations, yaml_destinations);
    let replicas = Api::<Deployment>::namespaced(client.clone(), &dsl_ns)
        .get("ticktock-log-worker")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas;
    assert_eq!(replicas, Some(2), "deployer.log.count");
    for queue in [
        "ticktock-time.ticktock",
        "ticktock-transform.ticktock",
        "ticktock-transform.ticktock.dlq",
    ] {
        assert!(
            queue_exists(&common::amqp_uri(), &format!("{dsl_ns}.{queue}")).await,
            "queue {dsl_ns}.{queue} declared"
        );
    }

    common::teardown(&client, &dsl_ns).await;
    common::teardown(&client, &yaml_ns).await;
    dsl_operator.stop().await;
    yaml_operator.stop().await;
}

async fn ready_condition(client: &Client, ns: &str, name: &str, phase: StreamPhase) -> String {
    let streams = Api::<Stream>::namespaced(client.clone(), ns);
    eventually(
        Duration::from_secs(30),
        &format!("{name} {phase:?}"),
        || async {
            let s = streams.get(name).await.ok()?.status?;
            let ready = s.conditions.iter().find(|c| c.type_ == "Ready")?;
            (s.phase == phase).then(|| ready.message.clone())
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_bad_definition_or_an_unregistered_app_fails_the_stream_naming_it_and_deploys_nothing() {
    let (client, ns, operator) = setup("dsl-bad").await;
    register_ticktock_apps(&client, &ns).await;

    create(
        &client,
        &ns,
        stream(
            "broken",
            json!({"broker": "rabbit", "definition": "time | | log"}),
        ),
    )
    .await;
    let message = ready_condition(&client, &ns, "broken", StreamPhase::Failed).await;
    assert!(
        message.starts_with("spec.definition (pos 7): "),
        "the Ready condition names the position: {message}"
    );
    let events = Api::<Event>::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(30),
        "an Event with the problem",
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                        && e.type_.as_deref() == Some("Warning")
                        && e.note.as_deref().is_some_and(|n| n.contains("(pos 7)"))
                })
                .then_some(())
        },
    )
    .await;

    // An app nobody registered: Failed, naming the registration; nothing deployed.
    create(
        &client,
        &ns,
        stream(
            "upper",
            json!({"broker": "rabbit", "definition": "time | upper: shout | log"}),
        ),
    )
    .await;
    let message = ready_condition(&client, &ns, "upper", StreamPhase::Failed).await;
    assert!(
        message.contains("AppRegistration `processor.shout`"),
        "{message}"
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing is deployed half-way"
    );

    // Registering it wakes the Stream, which deploys all three apps.
    register(
        &client,
        &ns,
        "processor.shout",
        json!({"image": "eventflow/spring-transform-processor:dev"}),
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the Stream deployed once registered",
        || async {
            let names: Vec<String> = deployments
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter_map(|d| d.metadata.name)
                .collect();
            (names.len() == 3 && names.contains(&"upper-upper-worker".to_owned())).then_some(())
        },
    )
    .await;

    common::teardown(&client, &ns).await;
    operator.stop().await;
}
