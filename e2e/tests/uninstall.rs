//! The uninstall order of DESIGN.md, as NOTES.txt tells it, on the installed
//! example system: Streams and EventBrokers first (their finalizers need the
//! operator), then `helm uninstall`. Nothing of ours may stay but the CRDs.
//! It takes the whole system away, so `make e2e` runs it alone, after every
//! other test.

use std::time::Duration;

use eventflow_e2e::*;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};

/// Namespaced kinds an install of ours creates, or the operator creates.
const KINDS: &[(&str, &str, &str)] = &[
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "ReplicaSet"),
    ("", "v1", "Pod"),
    ("", "v1", "Service"),
    ("", "v1", "Secret"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("coordination.k8s.io", "v1", "Lease"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("policy", "v1", "PodDisruptionBudget"),
];

/// Labels that mark an object as ours: the operator's, or the chart's.
const OURS: &[&str] = &[
    "app.kubernetes.io/managed-by=eventflow-operator",
    "app.kubernetes.io/name=eventflow-operator",
    "app.kubernetes.io/instance=eventflow",
];

/// `kind/namespace/name` of every object of ours still there.
async fn leftovers(client: &Client) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for (group, version, kind) in KINDS {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
        for selector in OURS {
            for o in api
                .list(&ListParams::default().labels(selector))
                .await?
                .items
            {
                found.push(format!(
                    "{kind}/{}/{}",
                    o.metadata.namespace.unwrap_or_default(),
                    o.metadata.name.unwrap_or_default()
                ));
            }
        }
        // Whatever the labels: the operator's namespace holds nothing but
        // what Kubernetes itself puts into every namespace.
        let in_system: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), OPERATOR_NS, &ApiResource::from_gvk(&gvk));
        for o in in_system.list(&ListParams::default()).await?.items {
            let name = o.metadata.name.unwrap_or_default();
            let builtin = matches!(
                (*kind, name.as_str()),
                ("ServiceAccount", "default") | ("ConfigMap", "kube-root-ca.crt")
            );
            if !builtin {
                found.push(format!("{kind}/{OPERATOR_NS}/{name}"));
            }
        }
    }
    let named_ours =
        |name: &Option<String>| name.as_deref().is_some_and(|n| n.contains("eventflow"));
    for r in Api::<ClusterRole>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
    {
        if named_ours(&r.metadata.name) {
            found.push(format!("ClusterRole/{}", r.metadata.name.unwrap()));
        }
    }
    for b in Api::<ClusterRoleBinding>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
    {
        if named_ours(&b.metadata.name) {
            found.push(format!("ClusterRoleBinding/{}", b.metadata.name.unwrap()));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

#[tokio::test]
#[ignore = "needs a cluster; takes the example system away"]
async fn the_uninstall_order_leaves_nothing_of_ours_but_the_crds() {
    let client = client().await;
    example_system();
    let before = leftovers(&client).await.unwrap();
    assert!(
        before
            .iter()
            .any(|o| o.starts_with("Deployment/eventflow-demo/")),
        "the example system is not installed: {before:?}"
    );

    // 1. Streams and EventBrokers, while the operator runs their finalizers.
    for kind in ["streams", "eventbrokers"] {
        run_tool(
            "kubectl",
            &["delete", kind, "--all", "-A", "--wait", "--timeout=300s"],
            None,
        )
        .unwrap();
    }
    // 2. The release.
    run_tool(
        "helm",
        &[
            "uninstall",
            "eventflow",
            "-n",
            OPERATOR_NS,
            "--wait",
            "--timeout",
            "300s",
        ],
        None,
    )
    .unwrap();

    // Garbage collection and pod termination take a moment.
    wait_for(
        Duration::from_secs(180),
        "every object of ours to be gone",
        || async {
            let left = leftovers(&client).await?;
            anyhow::ensure!(left.is_empty(), "left behind after uninstall: {left:#?}");
            Ok(true)
        },
    )
    .await
    .unwrap();

    // 3. The CRDs stay, by Helm's convention, until deleted by hand.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ["streams.eventflow.dev", "eventbrokers.eventflow.dev"] {
        assert!(
            crds.get_opt(name).await.unwrap().is_some(),
            "{name} is gone"
        );
    }
}
