//! `list` and `describe` against the real kube-apiserver (tier 2): a Stream
//! with a status as the operator writes it, read by the built binary as a
//! user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use eventflow_operator::api::Stream;
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-eventflow"))
        .args(args)
        .output()
        .expect("kubectl-eventflow runs")
}

async fn client() -> Client {
    assert!(
        std::env::var("KUBECONFIG").is_ok_and(|k| !k.is_empty()),
        "KUBECONFIG is not set: this test needs the control-plane-only kube-apiserver (eval \"$(e2e/cluster/control-plane.sh env)\")"
    );
    Client::try_default().await.unwrap()
}

async fn install_crd(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    api.patch(
        "streams.eventflow.dev",
        &PatchParams::apply("eventflow-tests").force(),
        &Patch::Apply(&Stream::crd()),
    )
    .await
    .unwrap();
    for _ in 0..100 {
        let crd = api.get("streams.eventflow.dev").await.unwrap();
        let established = crd.status.and_then(|s| s.conditions).is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the Stream CRD was not established");
}

async fn namespace(client: &Client) -> String {
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    let name = format!(
        "cli-describe-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

#[tokio::test]
#[ignore = "needs kube-apiserver"]
async fn list_and_describe_show_a_streams_figures_and_a_missing_stream_exits_1() {
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client).await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    let stream: Stream = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "orders"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "billing", "image": "eventflow/billing:1", "worker": {},
             "subscribes": [{"destination": "orders"}]}
        ]}
    }))
    .unwrap();
    streams
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    let status = json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream", "status": {
        "phase": "Running", "appsReady": "1/1", "backlog": 9, "deadLetters": 3,
        "groupsObservedAt": jiff::Timestamp::now().to_string(),
        "workloads": [{"app": "billing", "role": "worker", "deployment": "orders-billing-worker",
                       "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}],
        "groups": [{"destination": "orders", "group": "billing", "app": "billing",
                    "queue": format!("{ns}.orders.billing"), "ready": 9, "consumers": 1,
                    "deadLetterQueue": format!("{ns}.orders.billing.dlq"), "deadLetters": 3}]
    }});
    streams
        .patch_status(
            "orders",
            &PatchParams::apply("eventflow-tests").force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();

    let list = run(&["list", "-n", &ns]);
    assert!(list.status.success(), "{list:?}");
    let out = String::from_utf8_lossy(&list.stdout);
    let row = out.lines().nth(1).unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        ["orders", "Running", "1/1", "9", "3", "-"],
        "{out}"
    );

    let json_out = run(&["list", "-n", &ns, "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(rows[0]["deadLetters"], 3);

    let describe = run(&["describe", "orders", "-n", &ns]);
    assert!(describe.status.success(), "{describe:?}");
    let tree = String::from_utf8_lossy(&describe.stdout);
    assert!(tree.starts_with(&format!("Stream {ns}/orders\n")), "{tree}");
    assert!(
        tree.contains("Backlog: 9 messages, dead letters: 3 (read "),
        "{tree}"
    );
    assert!(
        tree.contains("worker: Deployment orders-billing-worker, 1/1 ready"),
        "{tree}"
    );
    assert!(tree.contains("ready 9, unacked -, consumers 1"), "{tree}");
    assert!(
        tree.contains(&format!("DLQ {ns}.orders.billing.dlq: 3")),
        "{tree}"
    );

    let yaml = run(&["describe", "orders", "-n", &ns, "-o", "yaml"]);
    let d: serde_json::Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
    assert_eq!(d["apps"][0]["subscribes"][0]["ready"], 9);

    let missing = run(&["describe", "nope", "-n", &ns]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains(&format!("Stream nope not found in namespace {ns}")),
        "{err}"
    );

    streams.delete("orders", &Default::default()).await.unwrap();
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &Default::default())
        .await
        .unwrap();
}
