//! Tier 2: a Stream's revisions (ControllerRevisions) recorded by an
//! in-process operator against the real kube-apiserver and RabbitMQ, and
//! rollbacks done with the library function `kubectl eventflow rollback` runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, eventually, queue_exists};
use eventflow_operator::{
    api::{AppRegistration, Stream},
    revision::{
        self, CHANGE_CAUSE, Revision,
        rollback::{RollbackError, rollback},
    },
};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

async fn setup(prefix: &str) -> (Client, String, Operator) {
    common::operator_on_external_broker(prefix).await
}

async fn create(client: &Client, ns: &str, stream: Value) {
    let s: Stream = serde_json::from_value(stream).unwrap();
    Api::<Stream>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

/// Merge-patches the Stream (spec and/or metadata) as a user would.
async fn edit(client: &Client, ns: &str, name: &str, patch: Value) {
    Api::<Stream>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Waits until the status describes the current generation, with the
/// topology declared and `revision` as the current revision.
async fn at_revision(client: &Client, ns: &str, name: &str, revision: i64) -> Stream {
    let api = Api::<Stream>::namespaced(client.clone(), ns);
    eventually(
        Duration::from_secs(60),
        &format!("Stream {name} deployed at revision {revision}"),
        || async {
            let s = api.get(name).await.ok()?;
            let status = s.status.as_ref()?;
            let done = status.observed_generation == s.metadata.generation
                && status.current_revision == Some(revision)
                && status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "TopologyReady" && c.status == "True");
            done.then_some(s)
        },
    )
    .await
}

/// The Stream's revisions, oldest first, as `kubectl eventflow history` reads them.
async fn revisions(client: &Client, ns: &str, name: &str) -> Vec<Revision> {
    let uid = Api::<Stream>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
        .uid()
        .unwrap();
    revision::history(client, ns, name, &uid).await.unwrap()
}

fn numbers(rs: &[Revision]) -> Vec<i64> {
    rs.iter().map(|r| r.number).collect()
}

/// Image, replicas and env (name=value) of Deployment `name`.
async fn deployment(client: &Client, ns: &str, name: &str) -> Option<(String, i32, Vec<String>)> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?;
    let spec = d.spec.unwrap();
    let c = &spec.template.spec.unwrap().containers[0];
    let env = c
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "MODE")
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect();
    Some((c.image.clone().unwrap(), spec.replicas.unwrap_or(1), env))
}

/// Deletes the ControllerRevisions of the namespace (control-plane mode
/// has no garbage collector), then the rest.
async fn teardown(client: &Client, ns: &str) {
    common::teardown(client, ns).await;
    Api::<ControllerRevision>::namespaced(client.clone(), ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
}

fn shop(name: &str, worker_image: &str, replicas: i32, mode: &str, audit: bool) -> Value {
    let mut apps = vec![json!({
        "name": "account", "image": "eventflow/account:0.1.0", "web": {},
        "worker": {"image": worker_image, "replicas": replicas},
        "env": [{"name": "MODE", "value": mode}],
        "publishes": ["account"],
        "subscribes": [{"destination": "account", "eventTypes": ["account.*"]}]
    })];
    if audit {
        apps.push(
            json!({"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
            "subscribes": [{"destination": "account", "group": "audit"}]}),
        );
    }
    json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
           "metadata": {"name": name, "annotations": {CHANGE_CAUSE: "first deploy"}},
           "spec": {"broker": "rabbit", "revisionHistoryLimit": 3, "apps": apps}})
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn each_effective_change_is_one_revision_numbered_upwards_and_pruned_at_the_limit() {
    let (client, ns, _operator) = setup("rev-record").await;
    create(
        &client,
        &ns,
        shop("shop", "eventflow/account:0.1.0", 1, "a", true),
    )
    .await;
    let stream = at_revision(&client, &ns, "shop", 1).await;
    let rs = revisions(&client, &ns, "shop").await;
    assert_eq!(numbers(&rs), [1]);
    assert_eq!(rs[0].change_cause.as_deref(), Some("first deploy"));
    let cr = Api::<ControllerRevision>::namespaced(client.clone(), &ns)
        .get(&rs[0].name)
        .await
        .unwrap();
    let owner = &cr.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Stream", stream.uid().unwrap().as_str(), Some(true))
    );
    assert_eq!(cr.labels()["eventflow.dev/stream"], "shop");
    assert!(rs[0].name.starts_with("shop-"), "{}", rs[0].name);

    // Suspend and resume are no revision, and neither is a metadata-only edit.
    for suspend in [true, false] {
        edit(&client, &ns, "shop", json!({"spec": {"suspend": suspend}})).await;
        at_revision(&client, &ns, "shop", 1).await;
    }
    edit(
        &client,
        &ns,
        "shop",
        json!({"metadata": {"labels": {"team": "x"}}}),
    )
    .await;
    at_revision(&client, &ns, "shop", 1).await;
    assert_eq!(numbers(&revisions(&client, &ns, "shop").await), [1]);

    // Four image changes: revisions 2..5; the limit (3) keeps 3, 4 and 5.
    // The cause annotation left from the first deploy is stale: not repeated.
    for (i, tag) in ["0.2.0", "0.3.0", "0.4.0", "0.5.0"].iter().enumerate() {
        let image = format!("eventflow/account:{tag}");
        edit(
            &client,
            &ns,
            "shop",
            json!({"spec": {"apps": shop("shop", &image, 1, "a", true)["spec"]["apps"]}}),
        )
        .await;
        at_revision(&client, &ns, "shop", i64::try_from(i).unwrap() + 2).await;
    }
    let rs = revisions(&client, &ns, "shop").await;
    assert_eq!(numbers(&rs), [3, 4, 5]);
    assert!(rs.iter().all(|r| r.change_cause.is_none()), "{rs:?}");
    assert_eq!(
        rs[2].data.apps[0].worker.as_ref().unwrap().image.as_deref(),
        Some("eventflow/account:0.5.0")
    );

    // Back to 0.3.0 by hand (revision 3's spec): revision 3 becomes 6, no duplicate.
    let old = shop("shop", "eventflow/account:0.3.0", 1, "a", true);
    edit(
        &client,
        &ns,
        "shop",
        json!({"metadata": {"annotations": {CHANGE_CAUSE: "revert by hand"}},
        "spec": {"apps": old["spec"]["apps"]}}),
    )
    .await;
    at_revision(&client, &ns, "shop", 6).await;
    let again = revisions(&client, &ns, "shop").await;
    assert_eq!(numbers(&again), [4, 5, 6]);
    assert_eq!(again[2].name, rs[0].name, "revision 3's object, renumbered");
    assert_eq!(again[2].change_cause.as_deref(), Some("revert by hand"));

    // A lower limit prunes at once, the current revision kept.
    edit(
        &client,
        &ns,
        "shop",
        json!({"spec": {"revisionHistoryLimit": 1}}),
    )
    .await;
    eventually(Duration::from_secs(60), "history pruned to 1", || async {
        (numbers(&revisions(&client, &ns, "shop").await) == [6]).then_some(())
    })
    .await;
    teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_rollback_restores_images_env_and_replicas_as_a_new_revision_and_keeps_surviving_queues()
{
    let (client, ns, _operator) = setup("rev-rollback").await;
    let uri = common::amqp_uri();
    let account_queue = format!("{ns}.account.account");
    let audit_queue = format!("{ns}.account.audit");
    create(
        &client,
        &ns,
        shop("shop", "eventflow/account:0.1.0", 1, "a", true),
    )
    .await;
    at_revision(&client, &ns, "shop", 1).await;
    assert!(queue_exists(&uri, &account_queue).await);
    assert!(queue_exists(&uri, &audit_queue).await);
    let v1 = deployment(&client, &ns, "shop-account-worker")
        .await
        .unwrap();
    assert_eq!(
        v1,
        ("eventflow/account:0.1.0".into(), 1, vec!["MODE=a".into()])
    );

    // Revision 2: a new worker image, env and replicas; audit removed.
    let v2 = shop("shop", "eventflow/account:0.2.0", 3, "b", false);
    edit(
        &client,
        &ns,
        "shop",
        json!({"metadata": {"annotations": {CHANGE_CAUSE: "v2"}},
        "spec": v2["spec"]}),
    )
    .await;
    at_revision(&client, &ns, "shop", 2).await;
    eventually(Duration::from_secs(60), "revision 2 deployed", || async {
        let w = deployment(&client, &ns, "shop-account-worker").await?;
        let gone = deployment(&client, &ns, "shop-audit-worker")
            .await
            .is_none();
        (w == ("eventflow/account:0.2.0".into(), 3, vec!["MODE=b".into()]) && gone).then_some(())
    })
    .await;
    assert!(
        queue_exists(&uri, &account_queue).await,
        "the surviving group keeps its queue"
    );
    eventually(
        Duration::from_secs(30),
        "the audit group's queue pruned",
        || async { (!queue_exists(&uri, &audit_queue).await).then_some(()) },
    )
    .await;

    // The rollback (default: the revision before the current one).
    let outcome = rollback(&client, &ns, "shop", None).await.unwrap();
    assert_eq!((outcome.from, outcome.to), (Some(2), 1));
    assert!(
        outcome.changes.contains(
            &"account worker image eventflow/account:0.2.0 → eventflow/account:0.1.0".to_owned()
        ),
        "{:?}",
        outcome.changes
    );
    assert!(outcome.changes.contains(&"app audit added".to_owned()));
    let stream = at_revision(&client, &ns, "shop", 3).await;
    // The stored spec is revision 1's (not merely what is deployed).
    let rs = revisions(&client, &ns, "shop").await;
    assert_eq!(numbers(&rs), [2, 3]);
    assert_eq!(revision::user_spec(&stream.spec), rs[1].data.spec);
    assert_eq!(stream.spec.apps.len(), 2);
    assert_eq!(stream.spec.revision_history_limit, Some(3));
    assert_eq!(stream.annotations()[CHANGE_CAUSE], "rollback to revision 1");
    assert_eq!(
        rs[1].change_cause.as_deref(),
        Some("rollback to revision 1")
    );
    eventually(
        Duration::from_secs(60),
        "revision 1's workloads back",
        || async {
            let w = deployment(&client, &ns, "shop-account-worker").await?;
            let audit = deployment(&client, &ns, "shop-audit-worker").await?;
            (w == v1 && audit.0 == "eventflow/audit:0.1.0").then_some(())
        },
    )
    .await;
    assert!(queue_exists(&uri, &account_queue).await, "kept throughout");
    assert!(queue_exists(&uri, &audit_queue).await, "declared again");

    // Nothing to do, and a revision that does not exist: clear errors, nothing written.
    let before = Api::<Stream>::namespaced(client.clone(), &ns)
        .get("shop")
        .await
        .unwrap();
    let e = rollback(&client, &ns, "shop", Some(3)).await.unwrap_err();
    assert!(
        matches!(e, RollbackError::AlreadyAt { number: 3, .. }),
        "{e}"
    );
    let e = rollback(&client, &ns, "shop", Some(1)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Stream {ns}/shop has no revision 1 (revisions: 2, 3)")
    );
    let e = rollback(&client, &ns, "nope", None).await.unwrap_err();
    assert!(matches!(e, RollbackError::StreamNotFound(_)), "{e}");
    let after = Api::<Stream>::namespaced(client.clone(), &ns)
        .get("shop")
        .await
        .unwrap();
    assert_eq!(before.resource_version(), after.resource_version());

    // Rolling forward again works the same way: revision 2 becomes 4.
    let outcome = rollback(&client, &ns, "shop", Some(2)).await.unwrap();
    assert_eq!(outcome.to, 2);
    at_revision(&client, &ns, "shop", 4).await;
    assert!(queue_exists(&uri, &account_queue).await);
    teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn a_definition_stream_rolls_back_to_its_earlier_definition_and_properties() {
    let (client, ns, _operator) = setup("rev-definition").await;
    for (name, image) in [
        ("source.time", "eventflow/spring-time-source:dev"),
        (
            "processor.transform",
            "eventflow/spring-transform-processor:dev",
        ),
        ("sink.log", "eventflow/spring-count-sink:dev"),
    ] {
        let r: AppRegistration = serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "AppRegistration",
            "metadata": {"name": name}, "spec": {"image": image}}))
        .unwrap();
        Api::<AppRegistration>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &r)
            .await
            .unwrap();
    }
    create(
        &client,
        &ns,
        json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "tick"},
        "spec": {"broker": "rabbit", "definition": "time | log",
                 "deploymentProperties": {"deployer.log.count": "2"}}}),
    )
    .await;
    at_revision(&client, &ns, "tick", 1).await;
    edit(
        &client,
        &ns,
        "tick",
        json!({"spec": {"definition": "time | transform | log",
        "deploymentProperties": {"deployer.log.count": null, "deployer.transform.count": "3"}}}),
    )
    .await;
    at_revision(&client, &ns, "tick", 2).await;
    let rs = revisions(&client, &ns, "tick").await;
    assert_eq!(rs[1].data.apps.len(), 3, "the expansion is recorded");

    let outcome = rollback(&client, &ns, "tick", None).await.unwrap();
    assert!(
        outcome.changes.contains(&"definition changed".to_owned()),
        "{:?}",
        outcome.changes
    );
    let stream = at_revision(&client, &ns, "tick", 3).await;
    assert_eq!(stream.spec.definition.as_deref(), Some("time | log"));
    assert_eq!(
        stream.spec.deployment_properties,
        [("deployer.log.count".to_owned(), "2".to_owned())].into()
    );
    assert!(
        stream.spec.apps.is_empty(),
        "a definition Stream keeps no apps"
    );
    eventually(
        Duration::from_secs(60),
        "the transform app removed",
        || async {
            let d = Api::<Deployment>::namespaced(client.clone(), &ns);
            let transform = d.get_opt("tick-transform-worker").await.unwrap();
            let log = d.get_opt("tick-log-worker").await.unwrap()?;
            (transform.is_none() && log.spec?.replicas == Some(2)).then_some(())
        },
    )
    .await;
    teardown(&client, &ns).await;
}
