//! `kubectl eventflow history` and `rollback` run as a user runs them,
//! against the real kube-apiserver (KUBECONFIG). No operator runs here: the
//! test writes the ControllerRevisions the operator would have recorded
//! (the operator's side is tested in operator/tests/revisions.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{process::Output, time::Duration};

use eventflow_operator::{
    api::{Stream, StreamSpec},
    revision::{CHANGE_CAUSE, RevisionData, revision_name},
};
use k8s_openapi::{
    api::{apps::v1::ControllerRevision, core::v1::Namespace},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn kubectl_eventflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-eventflow"))
        .args(args)
        .output()
        .expect("kubectl-eventflow runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

async fn client() -> Client {
    assert!(
        std::env::var("KUBECONFIG").is_ok_and(|v| !v.is_empty()),
        "KUBECONFIG is not set: this test needs the control-plane-only kube-apiserver \
         (eval \"$(e2e/cluster/control-plane.sh env)\")"
    );
    Client::try_default().await.unwrap()
}

async fn install_stream_crd(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = Stream::crd();
    let name = crd.metadata.name.clone().unwrap();
    api.patch(
        &name,
        &PatchParams::apply("eventflow-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = api.get(&name).await.unwrap();
        let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CRD not established"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spec(image: &str) -> Value {
    json!({"broker": "rabbit", "suspend": true, "apps": [
        {"name": "account", "image": image, "worker": {}, "subscribes": [{"destination": "account"}]}]})
}

/// The ControllerRevision the operator records for `spec` as revision `number`.
fn controller_revision(
    stream: &Stream,
    spec: &Value,
    number: i64,
    cause: Option<&str>,
) -> ControllerRevision {
    let spec: StreamSpec = serde_json::from_value(spec.clone()).unwrap();
    let data = RevisionData::of(&spec);
    let mut annotations = serde_json::Map::new();
    if let Some(c) = cause {
        annotations.insert(CHANGE_CAUSE.into(), c.into());
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": revision_name("shop", &data),
            "labels": {"eventflow.dev/stream": "shop"},
            "annotations": annotations,
            "ownerReferences": [stream.controller_owner_ref(&()).unwrap()],
        },
        "data": data,
        "revision": number,
    }))
    .unwrap()
}

#[tokio::test]
#[ignore = "needs kube-apiserver"]
async fn history_lists_and_rollback_writes_the_earlier_spec_through_the_api() {
    let client = client().await;
    install_stream_crd(&client).await;
    let mut bytes = [0u8; 4];
    getrandom_bytes(&mut bytes);
    let ns = format!(
        "cli-rev-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    let stream: Stream = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop"}, "spec": spec("account:2")}))
    .unwrap();
    let stream = streams
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    let status = json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "status": {"phase": "Running", "currentRevision": 2}});
    streams
        .patch_status(
            "shop",
            &PatchParams::apply("eventflow-tests"),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), &ns);
    for cr in [
        controller_revision(&stream, &spec("account:1"), 1, Some("first deploy")),
        controller_revision(&stream, &spec("account:2"), 2, None),
    ] {
        revisions.create(&PostParams::default(), &cr).await.unwrap();
    }

    let o = kubectl_eventflow(&["history", "shop", "-n", &ns]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("REVISION"), "{out}");
    assert!(
        lines[1].starts_with("1 ") && lines[1].contains("first deploy"),
        "{out}"
    );
    assert!(lines[2].starts_with("2 *"), "{out}");
    assert!(
        lines[2].ends_with("account worker image account:1 → account:2"),
        "{out}"
    );

    let o = kubectl_eventflow(&["history", "shop", "-n", &ns, "-o", "json"]);
    let entries: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(entries[1]["revision"], 2);
    assert_eq!(entries[1]["current"], true);
    assert_eq!(entries[0]["apps"][0]["images"][0], "worker=account:1");

    let o = kubectl_eventflow(&["history", "shop", "-n", &ns, "--revision", "1"]);
    let manifest: Value = serde_yaml::from_slice(&o.stdout).unwrap();
    assert_eq!(manifest["spec"]["apps"][0]["image"], "account:1");
    assert_eq!(manifest["changeCause"], "first deploy");

    // Unknown revision, unknown Stream: exit 1 naming the problem, nothing written.
    let o = kubectl_eventflow(&["rollback", "shop", "-n", &ns, "--to-revision", "7"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!(
            "Stream {ns}/shop has no revision 7 (revisions: 1, 2)"
        )),
        "{err}"
    );
    let o = kubectl_eventflow(&["history", "nope", "-n", &ns]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains(&format!("Stream {ns}/nope not found")),
        "{:?}",
        text(&o)
    );

    // The rollback: revision 1's spec, suspend kept, the cause annotated.
    let o = kubectl_eventflow(&["rollback", "shop", "-n", &ns]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains(
            "rolled back to revision 1 (was at revision 2); change-cause: rollback to revision 1"
        ),
        "{out}"
    );
    assert!(
        out.contains("account worker image account:2 → account:1"),
        "{out}"
    );
    let now = streams.get("shop").await.unwrap();
    assert_eq!(now.spec.apps[0].image.as_deref(), Some("account:1"));
    assert!(now.spec.suspend, "suspend is kept");
    assert_eq!(now.annotations()[CHANGE_CAUSE], "rollback to revision 1");

    let o = kubectl_eventflow(&["rollback", "shop", "-n", &ns, "--to-revision", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("is already at revision 1"),
        "{:?}",
        text(&o)
    );

    streams
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    revisions
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// Random bytes for a fresh namespace name (from the OS, via the std hasher's seed).
fn getrandom_bytes(out: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    for (i, b) in out.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        *b = h.finish().to_le_bytes()[0];
    }
}
