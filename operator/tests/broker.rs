//! Tier 2: EventBrokers reconciled by an in-process operator: a managed
//! broker's objects, and Ready that follows real AMQP connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, eventually};
use eventflow_operator::api::{BrokerPhase, EventBroker, Stream};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret, Service},
};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

fn secret_value(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
#[ignore = "needs kube-apiserver"]
async fn a_managed_broker_gets_generated_credentials_a_statefulset_and_its_services() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "broker-managed").await;
    let _operator = Operator::start(&client, &ns, common::test_settings()).await;
    let brokers = Api::<EventBroker>::namespaced(client.clone(), &ns);
    let broker: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit"}, "spec": {"managed": {"replicas": 3, "storage": {"size": "1Gi"}}}
    }))
    .unwrap();
    brokers
        .create(&PostParams::default(), &broker)
        .await
        .unwrap();

    let status = eventually(
        Duration::from_secs(30),
        "the managed broker's status",
        || async {
            brokers
                .get("rabbit")
                .await
                .ok()?
                .status
                .filter(|s| s.observed_generation == Some(1))
        },
    )
    .await;
    assert_eq!(
        status.credentials_secret.as_deref(),
        Some("rabbit-credentials")
    );
    assert_eq!(status.endpoint, Some(format!("rabbit.{ns}.svc:5672")));
    assert_eq!(status.mode.as_deref(), Some("managed"));
    assert_ne!(
        status.phase,
        BrokerPhase::Ready,
        "no pods run here, so no AMQP connection can succeed"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");

    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let credentials = secrets.get("rabbit-credentials").await.unwrap();
    let password = secret_value(&credentials, "password");
    assert_eq!(password.len(), 32);
    assert_eq!(
        secret_value(&credentials, "uri"),
        format!("amqp://eventflow:{password}@rabbit.{ns}.svc:5672/%2f")
    );
    assert_eq!(
        secret_value(&credentials, "managementUri"),
        format!("http://eventflow:{password}@rabbit.{ns}.svc:15672")
    );
    assert_eq!(credentials.owner_references()[0].name, "rabbit");
    assert!(
        secret_value(
            &secrets.get("rabbit-erlang-cookie").await.unwrap(),
            "cookie"
        )
        .len()
            >= 32
    );

    let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .get("rabbit")
        .await
        .unwrap();
    assert_eq!(sts.owner_references()[0].kind, "EventBroker");
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("rabbit-nodes"));
    let claims = spec.volume_claim_templates.unwrap_or_default();
    assert_eq!(
        claims.len(),
        1,
        "each node keeps its data on a claim of its own"
    );
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    assert_eq!(
        services
            .get("rabbit-nodes")
            .await
            .unwrap()
            .spec
            .unwrap()
            .cluster_ip
            .as_deref(),
        Some("None")
    );
    assert!(services.get("rabbit").await.is_ok());
    let conf = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("rabbit-config")
        .await
        .unwrap();
    assert!(conf.data.unwrap()["rabbitmq.conf"].contains("classic_config"));

    // Reconciling again never regenerates the password.
    brokers
        .patch(
            "rabbit",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        secret_value(
            &secrets.get("rabbit-credentials").await.unwrap(),
            "password"
        ),
        password
    );
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver"]
async fn a_credentials_secret_from_an_older_operator_gets_its_management_uri_and_keeps_its_password()
 {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "broker-old-secret").await;
    // As an operator before managementUri wrote it.
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let old: Secret = serde_json::from_value(json!({
        "metadata": {"name": "rabbit-credentials"},
        "stringData": {"username": "eventflow", "password": "older", "host": format!("rabbit.{ns}.svc"),
            "port": "5672", "uri": format!("amqp://eventflow:older@rabbit.{ns}.svc:5672/%2f")}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &old).await.unwrap();
    let _operator = Operator::start(&client, &ns, common::test_settings()).await;
    let broker: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit"}, "spec": {"managed": {}}
    }))
    .unwrap();
    Api::<EventBroker>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &broker)
        .await
        .unwrap();
    let completed = eventually(
        Duration::from_secs(30),
        "key managementUri added to the older Secret",
        || async {
            let s = secrets.get("rabbit-credentials").await.ok()?;
            s.data.as_ref()?.contains_key("managementUri").then_some(s)
        },
    )
    .await;
    assert_eq!(
        secret_value(&completed, "managementUri"),
        format!("http://eventflow:older@rabbit.{ns}.svc:15672")
    );
    assert_eq!(secret_value(&completed, "password"), "older");
    assert_eq!(
        secret_value(&completed, "uri"),
        format!("amqp://eventflow:older@rabbit.{ns}.svc:5672/%2f")
    );
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn an_external_broker_is_ready_only_while_its_credentials_open_a_connection() {
    let client = common::client().await;
    let uri = common::amqp_uri();
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "broker-ready").await;
    common::external_broker(&client, &ns, &uri).await;
    let _operator = Operator::start(&client, &ns, common::test_settings()).await;
    let brokers = Api::<EventBroker>::namespaced(client.clone(), &ns);
    let phase = |want: BrokerPhase| {
        let brokers = brokers.clone();
        async move {
            let s = brokers.get("rabbit").await.ok()?.status?;
            let ready = s.conditions.iter().any(|c| {
                c.type_ == "Ready"
                    && c.status
                        == if want == BrokerPhase::Ready {
                            "True"
                        } else {
                            "False"
                        }
            });
            (s.phase == want && ready).then_some(s)
        }
    };
    let ready = eventually(
        Duration::from_secs(30),
        "Ready with the right credentials",
        || phase(BrokerPhase::Ready),
    )
    .await;
    assert_eq!(
        ready.endpoint.as_deref(),
        Some(common::amqp_uri().rsplit('@').next().unwrap())
    );

    // The same broker, a wrong password: not Ready at the next check.
    let wrong = uri.replacen(":eventflow@", ":wrong@", 1);
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "rabbit-uri",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"uri": wrong}})),
        )
        .await
        .unwrap();
    let failed = eventually(
        Duration::from_secs(30),
        "not Ready with a wrong password",
        || phase(BrokerPhase::Unreachable),
    )
    .await;
    let condition = failed
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(condition.reason, "BrokerError", "{condition:?}");

    // A Stream on that broker stops claiming BrokerReady as soon as the broker is not Ready.
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    streams
        .create(&PostParams::default(), &common::shop_stream("shop"))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the Stream's BrokerReady False",
        || async {
            let s = streams.get("shop").await.ok()?;
            let status = s.status?;
            let broker = status
                .conditions
                .iter()
                .find(|c| c.type_ == "BrokerReady")?;
            (broker.status == "False" && status.observed_generation == s.metadata.generation)
                .then_some(())
        },
    )
    .await;
    // Put the right password back: the Stream can be deleted with its topology.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "rabbit-uri",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"uri": uri}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(40),
        "the broker Ready again and the Stream's BrokerReady True",
        || async {
            let s = streams.get("shop").await.ok()?;
            let ok = s
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "BrokerReady" && c.status == "True");
            ok.then_some(())
        },
    )
    .await;
    common::teardown(&client, &ns).await;
}
