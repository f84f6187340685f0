//! Smoke suite of the cluster itself: what every eventflow test relies on.
//! Runs against whatever `KUBECONFIG` points at — the local node or kind.

use std::time::Duration;

use eventflow_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{DeleteParams, PostParams};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

const READY: Duration = Duration::from_secs(180);

fn smoke_deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{
                        "name": "smoke",
                        "image": image("e2e-smoke"),
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["serve", "0.0.0.0:8080"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        "securityContext": restricted_container_security(),
                    }]
                }
            }
        }
    }))
    .expect("valid Deployment")
}

async fn deployment_available(
    deployments: &kube::Api<Deployment>,
    name: &str,
) -> anyhow::Result<()> {
    wait_for(
        READY,
        &format!("Deployment {name} to be available"),
        || async {
            let d = deployments.get(name).await?;
            Ok(d.status.and_then(|s| s.available_replicas).unwrap_or(0) >= 1)
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_deployment_of_a_locally_built_image_becomes_ready() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "deploy").await.unwrap();
    let deployments = ns.api::<Deployment>();
    deployments
        .create(&PostParams::default(), &smoke_deployment("web"))
        .await
        .unwrap();
    deployment_available(&deployments, "web").await.unwrap();
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(1));
    ns.delete().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_pod_resolves_another_service_by_dns_name_and_gets_an_http_answer() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "dns").await.unwrap();
    ns.api::<Deployment>()
        .create(&PostParams::default(), &smoke_deployment("web"))
        .await
        .unwrap();
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let svc = ns
        .api::<Service>()
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    deployment_available(&ns.api::<Deployment>(), "web")
        .await
        .unwrap();

    let url = format!("http://web.{}.svc.cluster.local:80/", ns.name);
    let client_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "fetch",
                "image": image("e2e-smoke"),
                "imagePullPolicy": "IfNotPresent",
                "args": ["fetch", url, "90"],
                "securityContext": restricted_container_security(),
            }]
        }
    }))
    .unwrap();
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &client_pod)
        .await
        .unwrap();
    let (phase, log) = wait_pod_finished(&pods, "client", READY).await.unwrap();
    assert_eq!(phase, "Succeeded", "the client pod failed; its log:\n{log}");
    assert!(
        log.contains(&format!(
            "resolved web.{}.svc.cluster.local to {cluster_ip}",
            ns.name
        )),
        "{log}"
    );
    assert!(
        log.contains("eventflow-smoke web-"),
        "the answer did not come from the web pod:\n{log}"
    );
    ns.delete().await.unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn rabbitmq_runs_as_a_pod_and_accepts_an_amqp_connection_through_a_port_forward() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "amqp").await.unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "rabbitmq"},
        "stringData": {"username": "smoke", "password": "smoke-secret"}
    }))
    .unwrap();
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let from_secret = |key: &str| json!({"secretKeyRef": {"name": "rabbitmq", "key": key}});
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "rabbitmq"},
        "spec": {
            "securityContext": {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999},
            "containers": [{
                "name": "rabbitmq",
                "image": RABBITMQ_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "env": [
                    {"name": "RABBITMQ_DEFAULT_USER", "valueFrom": from_secret("username")},
                    {"name": "RABBITMQ_DEFAULT_PASS", "valueFrom": from_secret("password")},
                ],
                "ports": [{"containerPort": 5672}],
                "readinessProbe": {"tcpSocket": {"port": 5672}, "periodSeconds": 2},
                "securityContext": restricted_container_security(),
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/rabbitmq"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    }))
    .unwrap();
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    if let Err(e) = wait_pod_ready(&pods, "rabbitmq", READY).await {
        panic!("{e:#}\n{}", describe_pod(&pods, "rabbitmq").await);
    }

    let local = port_forward(pods.clone(), "rabbitmq", 5672).await.unwrap();
    let uri = format!("amqp://smoke:smoke-secret@{local}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_declare(
            "smoke".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .basic_publish(
            "".into(),
            "smoke".into(),
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let mut got = None;
    for _ in 0..50 {
        got = channel
            .basic_get("smoke".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        got.expect("the published message came back").delivery.data,
        b"hello"
    );
    conn.close(200, "done".into()).await.unwrap();
    ns.delete().await.unwrap();
}

fn volume_pod(name: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532},
            "containers": [{
                "name": "sh",
                "image": BASE_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "securityContext": restricted_container_security(),
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        }
    }))
    .expect("valid Pod")
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_pvc_binds_and_its_data_survives_the_pods_deletion() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "pvc").await.unwrap();
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}
    }))
    .unwrap();
    let pvcs = ns.api::<PersistentVolumeClaim>();
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();
    let pods = ns.api::<Pod>();
    let proof = format!("written by {}", ns.name);
    pods.create(
        &PostParams::default(),
        &volume_pod("writer", &format!("echo '{proof}' > /data/proof")),
    )
    .await
    .unwrap();
    let (phase, log) = wait_pod_finished(&pods, "writer", READY).await.unwrap();
    assert_eq!(
        phase,
        "Succeeded",
        "writer failed: {log}\n{}",
        describe_pod(&pods, "writer").await
    );
    let bound = pvcs.get("data").await.unwrap().status.and_then(|s| s.phase);
    assert_eq!(bound.as_deref(), Some("Bound"));

    pods.delete("writer", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(READY, "the writer pod to be gone", || async {
        Ok(pods.get_opt("writer").await?.is_none())
    })
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &volume_pod("reader", "cat /data/proof"),
    )
    .await
    .unwrap();
    let (phase, log) = wait_pod_finished(&pods, "reader", READY).await.unwrap();
    assert_eq!(phase, "Succeeded", "reader failed: {log}");
    assert_eq!(log.trim(), proof);
    ns.delete().await.unwrap();
}
