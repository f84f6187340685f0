//! Day-2 behaviour of the example system on a real cluster: admission of bad
//! Streams, scaling, self-healing across an operator failover, and deleting a
//! Stream that shares a destination with another.

use std::time::Duration;

use eventflow_e2e::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NS: &str = EXAMPLES_NS;

#[tokio::test]
#[ignore = "needs a cluster"]
async fn kubectl_apply_of_invalid_streams_fails_naming_the_field() {
    let _client = client().await;
    example_system();
    let dir = repo_root().join("operator/tests/fixtures/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(field) = text.lines().find_map(|l| l.strip_prefix("# field: ")) else {
            continue;
        };
        let path = path.to_string_lossy().into_owned();
        let out = run_tool(
            "kubectl",
            &["apply", "-n", NS, "--dry-run=server", "-f", &path],
            None,
        );
        let err = format!("{:#}", out.expect_err(&format!("{path} was accepted")));
        assert!(
            err.contains(field),
            "{path}: the error does not name {field}:\n{err}"
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} invalid fixtures");
}

async fn lease_holder(client: &Client) -> String {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    leases
        .get("eventflow-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn after_the_leader_pod_is_deleted_the_other_replica_takes_over_and_restores_a_deleted_deployment()
 {
    let client = client().await;
    example_system();
    let old = lease_holder(&client).await;
    Api::<Pod>::namespaced(client.clone(), OPERATOR_NS)
        .delete(&old, &DeleteParams::default())
        .await
        .unwrap();
    // One Deployment of each example Stream: the new leader reconciles every
    // Stream at once, and none of them may be left behind.
    const DELETED: [&str; 2] = ["ecommerce-payment-worker", "audit-order-audit"];
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for name in DELETED {
        deployments
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in DELETED {
        wait_for(
            Duration::from_secs(120),
            &format!("the deleted Deployment {name} to come back and be available"),
            || async {
                let d = deployments.get_opt(name).await?;
                Ok(d.and_then(|d| d.status)
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    >= 1)
            },
        )
        .await
        .unwrap();
    }
    let new = lease_holder(&client).await;
    assert_ne!(new, old, "the deleted leader still holds the lease");
}

fn workload<'a>(stream: &'a DynamicObject, app: &str, role: &str) -> Option<&'a Value> {
    stream.data["status"]["workloads"]
        .as_array()?
        .iter()
        .find(|w| w["app"] == app && w["role"] == role)
}

async fn scale_payment_worker(client: &Client, replicas: i64) {
    let patch =
        json!([{"op": "replace", "path": "/spec/apps/2/worker/replicas", "value": replicas}]);
    let stream = example_streams(client).get("ecommerce").await.unwrap();
    assert_eq!(stream.data["spec"]["apps"][2]["name"], "payment");
    patch_example_stream("ecommerce", &patch).unwrap();
    wait_for(
        Duration::from_secs(120),
        &format!("status to show {replicas} ready payment workers"),
        || async {
            let s = example_streams(client).get("ecommerce").await?;
            let w = workload(&s, "payment", "worker")
                .cloned()
                .unwrap_or_default();
            let current = s.data["status"]["observedGeneration"] == json!(s.metadata.generation);
            Ok(current
                && w["replicas"] == replicas
                && w["readyReplicas"] == replicas
                && w["updatedReplicas"] == replicas)
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn scaling_a_worker_is_followed_by_the_streams_status() {
    let client = client().await;
    example_system();
    scale_payment_worker(&client, 2).await;
    scale_payment_worker(&client, 1).await;
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn deleting_a_tapping_stream_removes_its_workloads_and_queues_but_not_the_shared_destination()
{
    let client = client().await;
    example_system();
    let tap: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1",
        "kind": "Stream",
        "metadata": {"name": "tap-e2e", "namespace": NS},
        "spec": {
            "broker": "rabbit",
            "deletionPolicy": "Delete",
            "apps": [{
                "name": "tap",
                "image": image("counter"),
                "packaging": "Combined",
                "web": {"replicas": 1},
                "worker": {},
                "subscribes": [{"destination": "order", "group": "tap-e2e", "eventTypes": ["#"]}],
            }]
        }
    }))
    .unwrap();
    let api = example_streams(&client);
    api.create(&PostParams::default(), &tap).await.unwrap();
    wait_for(
        Duration::from_secs(180),
        "Stream tap-e2e to be Running",
        || async { Ok(api.get("tap-e2e").await?.data["status"]["phase"] == "Running") },
    )
    .await
    .unwrap();
    let conn = broker_connection(&client).await;
    let queue = format!("{NS}.order.tap-e2e");
    assert!(
        queue_exists(&conn, &queue).await,
        "{queue} was not declared"
    );

    api.delete("tap-e2e", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        Duration::from_secs(180),
        "Stream tap-e2e to be gone",
        || async { Ok(api.get_opt("tap-e2e").await?.is_none()) },
    )
    .await
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    wait_for(
        Duration::from_secs(120),
        "the tap's Deployment to be collected",
        || async { Ok(deployments.get_opt("tap-e2e-tap").await?.is_none()) },
    )
    .await
    .unwrap();
    for q in [
        queue.clone(),
        format!("{queue}.retry"),
        format!("{queue}.dlq"),
    ] {
        assert!(!queue_exists(&conn, &q).await, "{q} is still on the broker");
    }
    assert!(
        exchange_exists(&conn, &format!("{NS}.order")).await,
        "the shared order exchange was deleted"
    );
    // Other tests scale and delete ecommerce's workloads meanwhile: wait for it to settle.
    wait_for(
        Duration::from_secs(180),
        "Stream ecommerce to be Running",
        || async { Ok(api.get("ecommerce").await?.data["status"]["phase"] == "Running") },
    )
    .await
    .unwrap();
    let ecommerce = api.get("ecommerce").await.unwrap();
    for d in ecommerce.data["status"]["destinations"].as_array().unwrap() {
        for q in d["queues"].as_array().unwrap() {
            let q = q.as_str().unwrap();
            assert!(
                queue_exists(&conn, q).await,
                "ecommerce's queue {q} was deleted"
            );
        }
    }
}
