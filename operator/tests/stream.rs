//! Tier 2: Streams reconciled by an in-process operator against the real
//! kube-apiserver and the real RabbitMQ. Each test has its own namespace,
//! and so its own broker names (`<namespace>.<destination>…`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, eventually, queue_exists};
use eventflow_operator::api::{Stream, StreamPhase};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service, events::v1::Event};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, QueueDeleteOptions},
};
use serde_json::json;

async fn setup(prefix: &str) -> (Client, String, Operator) {
    common::operator_on_external_broker(prefix).await
}

async fn create_stream(client: &Client, ns: &str, stream: &Stream) {
    Api::<Stream>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), stream)
        .await
        .unwrap();
}

/// Waits until the Stream's status describes its current generation with the topology declared.
async fn converged(client: &Client, ns: &str, name: &str) -> Stream {
    let api = Api::<Stream>::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = api.get(name).await.ok();
        if let Some(s) = &s
            && let Some(status) = &s.status
            && status.observed_generation == s.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "TopologyReady" && c.status == "True")
        {
            return s.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Stream {ns}/{name} did not converge with TopologyReady within 60 s; last seen: {:?}",
            s.map(|s| (s.metadata.generation, s.status))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn amqp() -> lapin::Channel {
    let conn = Connection::connect(&common::amqp_uri(), ConnectionProperties::default())
        .await
        .unwrap();
    conn.create_channel().await.unwrap()
}

async fn events(client: &Client, ns: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_stream_on_an_external_broker_gets_owned_deployments_services_and_the_full_env_contract()
{
    let (client, ns, _operator) = setup("stream-wiring").await;
    create_stream(&client, &ns, &common::shop_stream("shop")).await;
    let stream = converged(&client, &ns, "shop").await;
    let status = stream.status.clone().unwrap();
    assert_eq!(
        status.phase,
        StreamPhase::Deploying,
        "no kubelet: pods never become ready"
    );
    assert_eq!(status.apps_ready.as_deref(), Some("0/3"));
    let names: Vec<_> = status
        .workloads
        .iter()
        .map(|w| w.deployment.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "shop-account-web",
            "shop-account-worker",
            "shop-audit-worker"
        ]
    );
    let account = status
        .destinations
        .iter()
        .find(|d| d.name == "account")
        .unwrap();
    assert_eq!(account.exchange, format!("{ns}.account"));
    assert!(
        account
            .queues
            .contains(&format!("{ns}.account.account.retry"))
    );

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let web = deployments.get("shop-account-web").await.unwrap();
    let owner = &web.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("Stream", "shop", stream.uid().unwrap().as_str())
    );
    assert_eq!(owner.controller, Some(true));
    let env = web.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    for var in [
        "EVENTFLOW_ROLE",
        "EVENTFLOW_APP",
        "EVENTFLOW_STREAM",
        "POD_NAMESPACE",
        "EVENTFLOW_BROKER_URI",
        "EVENTFLOW_BINDINGS",
        "EVENTFLOW_HTTP_ADDR",
        "EVENTFLOW_ADMIN_ADDR",
        "EVENTFLOW_DATA_DIR",
        "EVENTFLOW_SELF_URL",
        "EVENTFLOW_PEER_ACCOUNT_URL",
    ] {
        assert!(names.contains(&var), "{var} missing from {names:?}");
    }
    let uri = env
        .iter()
        .find(|e| e.name == "EVENTFLOW_BROKER_URI")
        .unwrap();
    assert_eq!(
        uri.value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "rabbit-uri"
    );

    let service = Api::<Service>::namespaced(client.clone(), &ns)
        .get("shop-account-web")
        .await
        .unwrap();
    assert_eq!(service.owner_references()[0].name, "shop");
    assert!(
        Api::<Service>::namespaced(client.clone(), &ns)
            .get_opt("shop-audit-worker")
            .await
            .unwrap()
            .is_none(),
        "a worker has no Service"
    );

    // A spec change: every condition describes the new generation.
    let api = Api::<Stream>::namespaced(client.clone(), &ns);
    let mut s = api.get("shop").await.unwrap();
    s.spec.apps[0].web.as_mut().unwrap().replicas = Some(3);
    edit_spec(&api, "shop", &s).await;
    let after = converged(&client, &ns, "shop").await;
    let g = after.metadata.generation;
    assert!(g >= Some(2));
    assert!(
        after
            .status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .all(|c| c.observed_generation == g),
        "every condition is fresh"
    );
    let replicas = eventually(Duration::from_secs(30), "web scaled to 3", || async {
        let d = deployments.get("shop-account-web").await.ok()?;
        (d.spec?.replicas == Some(3)).then_some(3)
    })
    .await;
    assert_eq!(replicas, 3);

    // Events are recorded on transitions.
    let recorded = eventually(
        Duration::from_secs(20),
        "an Event about TopologyReady",
        || async {
            let evs = events(&client, &ns).await;
            evs.iter()
                .any(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("shop")
                        && e.reason.as_deref() == Some("Declared")
                })
                .then_some(evs.len())
        },
    )
    .await;
    assert!(recorded > 0);
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_message_reaches_the_group_queue_only_when_its_routing_key_matches() {
    let (client, ns, _operator) = setup("stream-routing").await;
    create_stream(&client, &ns, &common::shop_stream("shop")).await;
    converged(&client, &ns, "shop").await;
    let ch = amqp().await;
    let exchange = format!("{ns}.account");
    let queue = format!("{ns}.account.account");
    let publish = |key: &'static str, body: &'static [u8]| {
        let ch = ch.clone();
        let exchange = exchange.clone();
        async move {
            ch.basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    publish("order.ORDER_CREATED", b"not for account").await;
    publish("account.ACCOUNT_CREATED", b"for account").await;
    let got = eventually(
        Duration::from_secs(10),
        "the matching message in the group queue",
        || async {
            ch.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .map(|m| m.delivery.data.clone())
        },
    )
    .await;
    assert_eq!(got, b"for account");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rest = ch
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(
        rest.is_none(),
        "a message without a matching routing key must not arrive"
    );
    // The audit group subscribed to every event: it got both.
    let audit = format!("{ns}.account.shop-audit");
    let mut n = 0;
    while ch
        .basic_get(audit.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_some()
    {
        n += 1;
    }
    assert_eq!(n, 2);
    common::teardown(&client, &ns).await;
}

/// A new leader finds every Stream at once and reconciles them together:
/// each converges, and each keeps being corrected afterwards. (On the real
/// node a reconcile once waited forever there for the EventBroker cache;
/// the unit tests of `resolve` pin that case down, this is the whole path.)
#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn an_operator_starting_beside_many_streams_reconciles_and_keeps_correcting_each() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "stream-start").await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    let names: Vec<String> = (0..6).map(|i| format!("shop{i}")).collect();
    for name in &names {
        create_stream(&client, &ns, &common::shop_stream(name)).await;
    }
    let _operator = Operator::start(&client, &ns, common::test_settings()).await;
    for name in &names {
        converged(&client, &ns, name).await;
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    for name in &names {
        deployments
            .delete(&format!("{name}-account-worker"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in &names {
        let deployment = format!("{name}-account-worker");
        eventually(
            Duration::from_secs(30),
            &format!("the deleted Deployment {deployment} recreated"),
            || async { deployments.get_opt(&deployment).await.ok()?.map(|_| ()) },
        )
        .await;
    }
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn an_owned_deployment_that_is_deleted_or_edited_comes_back() {
    let (client, ns, _operator) = setup("stream-drift").await;
    create_stream(&client, &ns, &common::shop_stream("shop")).await;
    converged(&client, &ns, "shop").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let before = deployments
        .get("shop-account-worker")
        .await
        .unwrap()
        .uid()
        .unwrap();
    deployments
        .delete("shop-account-worker", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the deleted Deployment recreated",
        || async {
            let d = deployments.get_opt("shop-account-worker").await.ok()??;
            (d.uid().unwrap() != before).then_some(())
        },
    )
    .await;
    deployments
        .patch(
            "shop-account-web",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 7}
            })),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(45),
        "the edited replicas restored to 1",
        || async {
            let d = deployments.get("shop-account-web").await.ok()?;
            (d.spec?.replicas == Some(1)).then_some(())
        },
    )
    .await;

    // An app removed from the spec: its Deployment is removed as an orphan.
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    let mut s = streams.get("shop").await.unwrap();
    s.spec.apps.retain(|a| a.name != "audit");
    edit_spec(&streams, "shop", &s).await;
    eventually(
        Duration::from_secs(30),
        "the removed app's Deployment deleted",
        || async {
            deployments
                .get_opt("shop-audit-worker")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;

    // ... and its group's queues, which no Stream declares any more.
    let uri = common::amqp_uri();
    let audit = format!("{ns}.account.shop-audit");
    eventually(
        Duration::from_secs(30),
        "the removed group's queues deleted",
        || async {
            (!queue_exists(&uri, &audit).await
                && !queue_exists(&uri, &format!("{audit}.dlq")).await)
                .then_some(())
        },
    )
    .await;
    assert!(
        queue_exists(&uri, &format!("{ns}.account.account")).await,
        "the remaining group stays"
    );
    let evs = events(&client, &ns).await;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("TopologyPruned")),
        "a TopologyPruned Event"
    );
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_queue_deleted_on_the_broker_is_declared_again_within_a_minute() {
    let (client, ns, _operator) = setup("stream-redeclare").await;
    create_stream(&client, &ns, &common::shop_stream("shop")).await;
    converged(&client, &ns, "shop").await;
    let uri = common::amqp_uri();
    let queue = format!("{ns}.account.account");
    assert!(queue_exists(&uri, &queue).await);
    amqp()
        .await
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert!(!queue_exists(&uri, &queue).await);
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(60),
        "the deleted queue back on the broker",
        || async { queue_exists(&uri, &queue).await.then_some(()) },
    )
    .await;
    println!("queue re-declared after {:?}", started.elapsed());
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn deleting_a_stream_removes_its_queues_but_not_those_another_stream_uses_then_its_finalizer()
{
    let (client, ns, _operator) = setup("stream-delete").await;
    create_stream(&client, &ns, &common::shop_stream("shop")).await;
    // A second Stream consuming the same destination with its own group.
    create_stream(&client, &ns, &common::shop_stream("mall")).await;
    converged(&client, &ns, "shop").await;
    converged(&client, &ns, "mall").await;
    let uri = common::amqp_uri();
    let api = Api::<Stream>::namespaced(client.clone(), &ns);
    assert!(
        api.get("shop")
            .await
            .unwrap()
            .finalizers()
            .contains(&"eventflow.dev/topology".to_owned())
    );
    api.delete("shop", &DeleteParams::default()).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the Stream gone after its finalizer ran",
        || async { api.get_opt("shop").await.unwrap().is_none().then_some(()) },
    )
    .await;
    assert!(
        !queue_exists(&uri, &format!("{ns}.account.shop-audit")).await,
        "shop's own group queue is deleted"
    );
    assert!(!queue_exists(&uri, &format!("{ns}.account.shop-audit.dlq")).await);
    assert!(
        queue_exists(&uri, &format!("{ns}.account.mall-audit")).await,
        "mall's queue stays"
    );
    assert!(
        queue_exists(&uri, &format!("{ns}.account.account")).await,
        "the group both Streams declare stays"
    );
    let evs = events(&client, &ns).await;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("TopologyDeleted")),
        "a TopologyDeleted Event"
    );
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_stream_whose_broker_is_unreachable_is_still_deleted_within_the_bound_with_a_warning() {
    let client = common::client().await;
    let _ = common::amqp_uri();
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "stream-unreachable").await;
    // Nothing listens on port 1.
    common::external_broker(&client, &ns, "amqp://eventflow:eventflow@127.0.0.1:1/%2f").await;
    let settings = common::test_settings();
    let bound = settings.cleanup_give_up;
    let _operator = Operator::start(&client, &ns, settings).await;
    create_stream(&client, &ns, &common::shop_stream("shop")).await;
    let api = Api::<Stream>::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(30),
        "TopologyReady False with the finalizer in place",
        || async {
            let s = api.get("shop").await.ok()?;
            let failed = s.status?.conditions.iter().any(|c| {
                c.type_ == "TopologyReady"
                    && c.status == "False"
                    && c.observed_generation == s.metadata.generation
            });
            (failed && !s.metadata.finalizers.unwrap_or_default().is_empty()).then_some(())
        },
    )
    .await;
    let started = std::time::Instant::now();
    api.delete("shop", &DeleteParams::default()).await.unwrap();
    eventually(
        bound + Duration::from_secs(20),
        "the Stream deleted despite the unreachable broker",
        || async { api.get_opt("shop").await.unwrap().is_none().then_some(()) },
    )
    .await;
    assert!(
        started.elapsed() >= bound - Duration::from_secs(1),
        "it first waited for the broker"
    );
    let evs = events(&client, &ns).await;
    let warning = evs
        .iter()
        .find(|e| e.reason.as_deref() == Some("TopologyLeftBehind"))
        .expect("a TopologyLeftBehind Warning");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    assert!(
        warning
            .note
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("{ns}.account.account")),
        "names what was left"
    );
    common::teardown(&client, &ns).await;
}

/// A user's edit of the spec, as `kubectl patch --type merge` sends it: no
/// resourceVersion, so the operator's own status writes never make it
/// conflict.
async fn edit_spec(api: &Api<Stream>, name: &str, s: &Stream) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": s.spec })),
    )
    .await
    .unwrap();
}
