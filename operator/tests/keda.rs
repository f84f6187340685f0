//! Tier 2: `worker.autoscale.engine: KEDA` against KEDA's own CRDs (from
//! KEDA's Go module, `e2e/cluster/keda-crds.sh`) installed on the real
//! kube-apiserver. KEDA itself does not run here: what is proved is that
//! the objects the operator emits are what KEDA's schema accepts (every
//! field kept, none pruned), that the operator creates them for engine KEDA
//! and deletes them when the Stream no longer asks for them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{path::PathBuf, time::Duration};

use common::{Operator, eventually, require_env};
use eventflow_operator::{
    api::{EventBroker, Stream},
    autoscale::keda::{self, KedaObjects},
    connection::broker_wiring,
    context::{Context, Settings},
    metrics::Metrics,
    validate::validate,
};
use k8s_openapi::{
    api::core::v1::Secret,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// KEDA's CRD files, or a loud failure saying how to get them.
fn keda_crd_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(require_env(
        "EVENTFLOW_TEST_KEDA_CRDS",
        "KEDA's CRDs (`e2e/cluster/keda-crds.sh` downloads them; `control-plane.sh env` names the directory)",
    ));
    [
        "keda.sh_scaledobjects.yaml",
        "keda.sh_triggerauthentications.yaml",
    ]
    .iter()
    .map(|f| {
        let path = dir.join(f);
        assert!(
            path.is_file(),
            "{} is missing: run e2e/cluster/keda-crds.sh",
            path.display()
        );
        path
    })
    .collect()
}

/// Installs KEDA's ScaledObject and TriggerAuthentication CRDs and waits until they are established.
async fn install_keda_crds(client: &Client) {
    for path in keda_crd_files() {
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        common::install_crd(client, &crd).await;
    }
}

/// Stream `shop` whose app `billing` consumes `orders` and `refunds` (group
/// audit) with a worker scaled by `engine`.
fn stream(engine: &str) -> Stream {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "billing", "image": "eventflow/billing:0.1.0",
             "worker": {"autoscale": {"engine": engine, "minReplicas": 0, "maxReplicas": 5,
                 "backlogPerReplica": 50, "scaleDown": {"windowSeconds": 120, "maxStep": 1}}},
             "subscribes": [{"destination": "orders"}, {"destination": "refunds", "group": "audit"}]}
        ]}
    }))
    .unwrap()
}

fn broker(spec: Value) -> EventBroker {
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit"}, "spec": spec
    }))
    .unwrap()
}

/// The objects the operator would emit for `shop` in `ns` (stored in memory
/// with a uid, as validate needs) on `broker`.
fn emitted(ns: &str, broker_spec: Value, management_uri: bool, vhost: &str) -> KedaObjects {
    let mut s = stream("KEDA");
    s.metadata.namespace = Some(ns.into());
    s.metadata.uid = Some("0b5e4f3c-0000-4000-8000-000000000001".into());
    let mut b = broker(broker_spec);
    b.metadata.namespace = Some(ns.into());
    let valid = validate(&s).unwrap();
    let (app, autoscale) = keda::keda_workers(valid.spec()).next().unwrap();
    let target = keda::keda_broker(&broker_wiring(&b), management_uri, Some(vhost));
    keda::build(&valid, app, autoscale, &target).unwrap()
}

fn api(client: &Client, ns: &str, resource: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, resource)
}

/// Server-side applies `obj` (dry run first) and returns what the API server stored.
async fn apply(client: &Client, resource: &ApiResource, obj: &DynamicObject) -> DynamicObject {
    let ns = obj.metadata.namespace.as_deref().unwrap();
    let name = obj.metadata.name.as_deref().unwrap();
    let objects = api(client, ns, resource);
    let params = PatchParams::apply("eventflow-tests").force();
    let dry = objects
        .patch(name, &params.clone().dry_run(), &Patch::Apply(obj))
        .await
        .unwrap_or_else(|e| panic!("dry run of {} {name}: {e}", resource.kind));
    assert_eq!(
        dry.data["spec"], obj.data["spec"],
        "dry run kept every field"
    );
    assert!(
        objects.get_opt(name).await.unwrap().is_none(),
        "a dry run stores nothing"
    );
    objects
        .patch(name, &params, &Patch::Apply(obj))
        .await
        .unwrap_or_else(|e| panic!("apply of {} {name}: {e}", resource.kind))
}

#[tokio::test]
#[ignore = "needs kube-apiserver and KEDA's CRDs"]
async fn keda_accepts_the_objects_the_operator_emits_and_rejects_a_broken_one() {
    let client = common::client().await;
    install_keda_crds(&client).await;
    let ns = common::namespace(&client, "keda-schema").await;

    // A managed broker (http, two queues summed) and an external one without
    // a management API on a vhost of its own (amqp).
    let managed = emitted(&ns, json!({"managed": {}}), false, "/");
    let external = emitted(
        &ns,
        json!({"external": {"connectionSecret": {"name": "rabbit-uri"}}}),
        false,
        "orders",
    );
    assert_eq!(
        managed.scaled_object.data["spec"]["triggers"][0]["metadata"]["protocol"],
        "http"
    );
    assert_eq!(
        external.scaled_object.data["spec"]["triggers"][0]["metadata"]["protocol"],
        "amqp"
    );
    for (objects, suffix) in [(managed, "managed"), (external, "external")] {
        let mut objects = objects;
        // Both in one namespace: named apart.
        for o in [
            &mut objects.scaled_object,
            &mut objects.trigger_authentication,
        ] {
            o.metadata.name = Some(format!("shop-billing-worker-{suffix}"));
        }
        let name = objects.name().to_owned();
        objects.scaled_object.data["spec"]["triggers"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .for_each(|t| t["authenticationRef"]["name"] = json!(name));
        let stored = apply(
            &client,
            &keda::trigger_authentications(),
            &objects.trigger_authentication,
        )
        .await;
        assert_eq!(
            stored.data["spec"], objects.trigger_authentication.data["spec"],
            "KEDA's schema kept every field of the TriggerAuthentication"
        );
        let stored = apply(&client, &keda::scaled_objects(), &objects.scaled_object).await;
        assert_eq!(
            stored.data["spec"], objects.scaled_object.data["spec"],
            "KEDA's schema kept every field of the ScaledObject ({suffix})"
        );
        assert_eq!(
            stored.metadata.annotations, objects.scaled_object.metadata.annotations,
            "the protocol annotation"
        );
    }

    // The schema is really checked: a trigger without a type, and bounds
    // the wrong way round, are refused.
    let mut broken = emitted(&ns, json!({"managed": {}}), false, "/").scaled_object;
    broken.metadata.name = Some("broken".into());
    broken.data["spec"]["triggers"][0]
        .as_object_mut()
        .unwrap()
        .remove("type");
    let objects = api(&client, &ns, &keda::scaled_objects());
    let params = PatchParams::apply("eventflow-tests").force();
    let refused = |e: kube::Error, what: &str| match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{what}: {s:?}");
            s.message
        }
        e => panic!("{what}: {e}"),
    };
    let message = refused(
        objects
            .patch("broken", &params.clone().dry_run(), &Patch::Apply(&broken))
            .await
            .unwrap_err(),
        "a trigger without type",
    );
    assert!(message.contains("spec.triggers[0].type"), "{message}");
    let mut inverted = emitted(&ns, json!({"managed": {}}), false, "/").scaled_object;
    inverted.metadata.name = Some("inverted".into());
    inverted.data["spec"]["minReplicaCount"] = json!(9);
    let message = refused(
        objects
            .patch("inverted", &params, &Patch::Apply(&inverted))
            .await
            .unwrap_err(),
        "minReplicaCount above maxReplicaCount",
    );
    assert!(message.contains("minReplicaCount"), "{message}");

    // What the operator takes for "KEDA is not installed": a resource the
    // server does not serve — of a group it serves (KEDA's ScaledJob CRD is
    // not installed here) or not — not an object that is missing.
    let scaled_jobs = ApiResource {
        kind: "ScaledJob".into(),
        plural: "scaledjobs".into(),
        ..keda::scaled_objects()
    };
    let no_group = ApiResource {
        group: "keda-absent.example".into(),
        api_version: "keda-absent.example/v1alpha1".into(),
        ..keda::scaled_objects()
    };
    for resource in [scaled_jobs, no_group] {
        let body = json!({"apiVersion": resource.api_version, "kind": resource.kind,
            "metadata": {"name": "x"}});
        let e = api(&client, &ns, &resource)
            .patch("x", &params, &Patch::Apply(&body))
            .await
            .unwrap_err();
        assert!(keda::not_served(&e), "{e:?}");
    }
    let e = objects.get("absent").await.unwrap_err();
    assert!(!keda::not_served(&e), "{e:?}");

    common::teardown(&client, &ns).await;
}

async fn exists(client: &Client, ns: &str, resource: &ApiResource, name: &str) -> bool {
    api(client, ns, resource)
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
#[ignore = "needs kube-apiserver and KEDA's CRDs"]
async fn converge_applies_what_is_wanted_and_prunes_only_when_asked() {
    let client = common::client().await;
    common::install_crds(&client).await;
    install_keda_crds(&client).await;
    let ns = common::namespace(&client, "keda-converge").await;
    let stored = Api::<Stream>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &stream("KEDA"))
        .await
        .unwrap();
    let ctx = Context::new(client.clone(), "test", Metrics::new(), Settings::default());
    let valid = validate(&stored).unwrap();
    let mut b = broker(json!({"managed": {}}));
    b.metadata.namespace = Some(ns.clone());
    let wanted = keda::wanted(&ctx, &valid, &broker_wiring(&b), None)
        .await
        .unwrap();
    assert_eq!(wanted.len(), 1);
    assert_eq!(wanted[0].0, "billing");

    let done = keda::converge(&ctx, &valid, &wanted, true).await.unwrap();
    assert_eq!(done.applied, ["shop-billing-worker"]);
    assert!(done.removed.is_empty());
    let so = api(&client, &ns, &keda::scaled_objects())
        .get("shop-billing-worker")
        .await
        .unwrap();
    assert_eq!(so.data["spec"], wanted[0].1.scaled_object.data["spec"]);
    assert_eq!(
        so.metadata.owner_references.unwrap()[0].uid,
        stored.metadata.uid.clone().unwrap()
    );
    // Applied again: nothing changes.
    let again = keda::converge(&ctx, &valid, &wanted, true).await.unwrap();
    assert_eq!(again, done);

    // Not wanted any more, but no prune asked: kept.
    let kept = keda::converge(&ctx, &valid, &[], false).await.unwrap();
    assert_eq!(kept, keda::Converged::default());
    assert!(exists(&client, &ns, &keda::scaled_objects(), "shop-billing-worker").await);

    let pruned = keda::converge(&ctx, &valid, &[], true).await.unwrap();
    assert_eq!(
        pruned.removed,
        [
            "ScaledObject/shop-billing-worker",
            "TriggerAuthentication/shop-billing-worker"
        ]
    );
    assert!(!exists(&client, &ns, &keda::scaled_objects(), "shop-billing-worker").await);
    assert!(
        !exists(
            &client,
            &ns,
            &keda::trigger_authentications(),
            "shop-billing-worker"
        )
        .await
    );

    // An external broker: over amqp until its Secret has managementUri.
    let mut ext = broker(json!({"external": {"connectionSecret": {"name": "rabbit-uri"}}}));
    ext.metadata.namespace = Some(ns.clone());
    let amqp_uri = "amqp://u:p@rabbit.example:5672/orders";
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "rabbit-uri"}, "stringData": {"uri": amqp_uri}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let read = |ctx: Context| {
        let (valid, ext) = (valid.clone(), ext.clone());
        async move {
            let wanted = keda::wanted(&ctx, &valid, &broker_wiring(&ext), Some(amqp_uri))
                .await
                .unwrap();
            let objects = &wanted[0].1;
            (
                objects.scaled_object.data["spec"]["triggers"][0]["metadata"].clone(),
                objects.trigger_authentication.data["spec"]["secretTargetRef"][0]["key"].clone(),
            )
        }
    };
    let (metadata, key) = read(ctx).await;
    assert_eq!(
        (&metadata["protocol"], &metadata["vhostName"], &key),
        (&json!("amqp"), &json!("orders"), &json!("uri"))
    );
    secrets
        .patch(
            "rabbit-uri",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"stringData": {"managementUri": "http://u:p@rabbit.example:15672"}}),
            ),
        )
        .await
        .unwrap();
    // A fresh context: the Secret's keys are cached for a few seconds.
    let ctx = Context::new(client.clone(), "test", Metrics::new(), Settings::default());
    let (metadata, key) = read(ctx).await;
    assert_eq!(
        (&metadata["protocol"], &key),
        (&json!("http"), &json!("managementUri"))
    );

    // A suspended Stream wants none (KEDA would scale the held workers up).
    let ctx = Context::new(client.clone(), "test", Metrics::new(), Settings::default());
    let mut suspended = stored.clone();
    suspended.spec.suspend = true;
    let valid = validate(&suspended).unwrap();
    assert!(
        keda::wanted(&ctx, &valid, &broker_wiring(&b), None)
            .await
            .unwrap()
            .is_empty()
    );
    common::teardown(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs kube-apiserver, RabbitMQ and KEDA's CRDs"]
async fn an_operator_emits_keda_objects_for_engine_keda_and_removes_them_when_switched_back() {
    let client = common::client().await;
    common::install_crds(&client).await;
    install_keda_crds(&client).await;
    let ns = common::namespace(&client, "keda-operator").await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    // The external broker's Secret names its management API: KEDA reads it over http.
    common::with_management_api(&client, &ns).await;
    let operator = Operator::start(&client, &ns, common::test_settings()).await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    streams
        .create(&PostParams::default(), &stream("KEDA"))
        .await
        .unwrap();

    let scaled_objects = api(&client, &ns, &keda::scaled_objects());
    let so = eventually(WAIT, "the ScaledObject of the KEDA worker", || async {
        scaled_objects.get_opt("shop-billing-worker").await.unwrap()
    })
    .await;
    let spec = &so.data["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], "shop-billing-worker");
    assert_eq!(
        (
            &spec["minReplicaCount"],
            &spec["maxReplicaCount"],
            &spec["cooldownPeriod"]
        ),
        (&json!(0), &json!(5), &json!(120))
    );
    let queues: Vec<_> = spec["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["metadata"]["protocol"], "http");
            t["metadata"]["queueName"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        queues,
        [
            format!("{ns}.orders.billing"),
            format!("{ns}.refunds.audit")
        ]
    );
    let ta = api(&client, &ns, &keda::trigger_authentications())
        .get("shop-billing-worker")
        .await
        .unwrap();
    assert_eq!(
        ta.data["spec"]["secretTargetRef"],
        json!([{"parameter": "host", "name": "rabbit-uri", "key": "managementUri"}])
    );

    // Switched back to the Operator engine: both go.
    streams
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"apps": [
                stream("Operator").spec.apps[0]
            ]}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "the KEDA objects deleted", || async {
        let so = exists(&client, &ns, &keda::scaled_objects(), "shop-billing-worker").await;
        let ta = exists(
            &client,
            &ns,
            &keda::trigger_authentications(),
            "shop-billing-worker",
        )
        .await;
        (!so && !ta).then_some(())
    })
    .await;

    common::teardown(&client, &ns).await;
    operator.stop().await;
}
