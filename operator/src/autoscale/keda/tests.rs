#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::Response;
use kube::client::Body;
use serde_json::{Value, json};

use super::{objects::PROTOCOL_ANNOTATION, *};
use crate::{
    api::{EventBroker, Stream},
    connection::broker_wiring,
    context::{FakeApi, Settings},
    validate::validate,
};

/// Stream `shop` in `demo`: app `billing` subscribes `orders` (group
/// billing) and, when `two_groups`, `refunds` (group audit); its worker
/// has `autoscale`.
fn stream(autoscale: Value, two_groups: bool) -> Stream {
    let mut subscribes = vec![json!({"destination": "orders"})];
    if two_groups {
        subscribes.push(json!({"destination": "refunds", "group": "audit"}));
    }
    serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop", "namespace": "demo", "uid": "u-1"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "billing", "image": "eventflow/billing:0.1.0",
             "worker": {"autoscale": autoscale}, "subscribes": subscribes},
            {"name": "web", "image": "eventflow/web:0.1.0", "web": {}}
        ]}
    }))
    .unwrap()
}

fn managed() -> BrokerWiring {
    broker_wiring(
        &serde_json::from_value::<EventBroker>(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
            "metadata": {"name": "rabbit", "namespace": "demo"},
            "spec": {"managed": {}}
        }))
        .unwrap(),
    )
}

fn external() -> BrokerWiring {
    broker_wiring(
        &serde_json::from_value::<EventBroker>(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
            "metadata": {"name": "rabbit", "namespace": "demo"},
            "spec": {"external": {"connectionSecret": {"name": "rabbit-conn", "key": "amqpUri"}}}
        }))
        .unwrap(),
    )
}

fn keda(extra: Value) -> Value {
    let mut a = json!({"engine": "KEDA", "maxReplicas": 10, "backlogPerReplica": 100});
    a.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    a
}

/// The objects of app `billing` (the only KEDA worker of `s`).
fn built(s: &Stream, broker: &KedaBroker) -> KedaObjects {
    let valid = validate(s).unwrap();
    let workers: Vec<_> = keda_workers(valid.spec()).collect();
    assert_eq!(workers.len(), 1);
    let (app, autoscale) = workers[0];
    build(&valid, app, autoscale, broker).unwrap()
}

fn json_of(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap()
}

#[test]
fn a_managed_broker_is_read_over_its_management_api_with_the_bounds_and_behavior_of_the_spec() {
    let broker = keda_broker(&managed(), false, Some("/"));
    assert_eq!(
        (broker.protocol, broker.key.as_str(), broker.secret.as_str()),
        (Protocol::Http, "managementUri", "rabbit-credentials")
    );
    let objects = built(&stream(keda(json!({})), false), &broker);
    let owner = json!([{"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream", "name": "shop",
                        "uid": "u-1", "controller": true}]);
    let labels = json!({"app.kubernetes.io/managed-by": "eventflow-operator",
        "eventflow.dev/stream": "shop", "eventflow.dev/app": "billing", "eventflow.dev/role": "worker"});
    assert_eq!(
        json_of(&objects.scaled_object),
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "shop-billing-worker", "namespace": "demo", "labels": labels,
                "annotations": {PROTOCOL_ANNOTATION: "http: the management API of Secret rabbit-credentials key managementUri; KEDA counts messages ready + unacknowledged"},
                "ownerReferences": owner},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-billing-worker"},
                "minReplicaCount": 1, "maxReplicaCount": 10,
                "pollingInterval": 5, "cooldownPeriod": 60,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                    "scaleDown": {"stabilizationWindowSeconds": 60,
                        "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}]},
                }}},
                "triggers": [{
                    "type": "rabbitmq", "name": "q0",
                    "metadata": {"queueName": "demo.orders.billing", "mode": "QueueLength",
                        "value": "100", "protocol": "http", "vhostName": "/"},
                    "authenticationRef": {"name": "shop-billing-worker"},
                }],
            },
        })
    );
    assert_eq!(
        json_of(&objects.trigger_authentication),
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "shop-billing-worker", "namespace": "demo", "labels": labels,
                "ownerReferences": owner},
            "spec": {"secretTargetRef": [
                {"parameter": "host", "name": "rabbit-credentials", "key": "managementUri"}
            ]},
        })
    );
    assert_eq!(objects.name(), "shop-billing-worker");
    assert_eq!(objects.queues(), ["demo.orders.billing"]);
}

#[test]
fn an_external_broker_without_a_management_uri_is_read_over_amqp_and_says_so() {
    let broker = keda_broker(&external(), false, Some("prod"));
    assert_eq!(
        (broker.protocol, broker.key.as_str(), broker.secret.as_str()),
        (Protocol::Amqp, "amqpUri", "rabbit-conn")
    );
    let objects = built(&stream(keda(json!({})), false), &broker);
    let so = json_of(&objects.scaled_object);
    assert_eq!(
        so["spec"]["triggers"][0]["metadata"],
        json!({"queueName": "demo.orders.billing", "mode": "QueueLength", "value": "100",
               "protocol": "amqp", "vhostName": "prod"})
    );
    let note = so["metadata"]["annotations"][PROTOCOL_ANNOTATION]
        .as_str()
        .unwrap();
    assert!(
        note.starts_with("amqp: Secret rabbit-conn has no key managementUri")
            && note.contains("only messages ready"),
        "{note}"
    );
    assert_eq!(
        json_of(&objects.trigger_authentication)["spec"]["secretTargetRef"],
        json!([{"parameter": "host", "name": "rabbit-conn", "key": "amqpUri"}])
    );

    // With the key, the same broker is read over http.
    let with_api = keda_broker(&external(), true, Some("prod"));
    assert_eq!(
        (with_api.protocol, with_api.key.as_str()),
        (Protocol::Http, "managementUri")
    );
    // An unknown vhost (URI unreadable) is left to the URI.
    let objects = built(
        &stream(keda(json!({})), false),
        &keda_broker(&external(), false, None),
    );
    assert!(
        json_of(&objects.scaled_object)["spec"]["triggers"][0]["metadata"]
            .get("vhostName")
            .is_none()
    );
}

#[test]
fn two_groups_give_two_triggers_whose_sum_is_scaled_on() {
    let broker = keda_broker(&managed(), false, Some("/"));
    let objects = built(&stream(keda(json!({})), true), &broker);
    let spec = &json_of(&objects.scaled_object)["spec"];
    let triggers = spec["triggers"].as_array().unwrap();
    assert_eq!(triggers.len(), 2);
    assert_eq!(
        objects.queues(),
        ["demo.orders.billing", "demo.refunds.audit"]
    );
    for (i, t) in triggers.iter().enumerate() {
        assert_eq!(t["name"], format!("q{i}"));
        assert_eq!(t["type"], "rabbitmq");
        assert_eq!(t["metadata"]["value"], "100");
        assert_eq!(t["authenticationRef"]["name"], "shop-billing-worker");
    }
    assert_eq!(
        spec["advanced"]["scalingModifiers"],
        json!({"formula": "q0 + q1", "target": "100", "metricType": "AverageValue"})
    );
}

#[test]
fn bounds_windows_and_steps_are_mapped() {
    let autoscale = keda(json!({
        "minReplicas": 0, "maxReplicas": 7, "backlogPerReplica": 250,
        "scaleUp": {"windowSeconds": 30, "maxStep": 3},
        "scaleDown": {"windowSeconds": 300, "maxStep": 1},
    }));
    let objects = built(
        &stream(autoscale, false),
        &keda_broker(&managed(), false, Some("/")),
    );
    let spec = &json_of(&objects.scaled_object)["spec"];
    assert_eq!(
        (
            &spec["minReplicaCount"],
            &spec["maxReplicaCount"],
            &spec["cooldownPeriod"]
        ),
        (&json!(0), &json!(7), &json!(300))
    );
    assert_eq!(spec["triggers"][0]["metadata"]["value"], "250");
    assert_eq!(
        spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        json!({
            "scaleUp": {"stabilizationWindowSeconds": 30,
                "policies": [{"type": "Pods", "value": 3, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 300,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}]},
        })
    );
}

#[test]
fn only_workers_asking_for_keda_get_objects() {
    let operator = stream(
        json!({"engine": "Operator", "maxReplicas": 3, "backlogPerReplica": 10}),
        false,
    );
    assert_eq!(keda_workers(&operator.spec).count(), 0);
    let default_engine = stream(json!({"maxReplicas": 3, "backlogPerReplica": 10}), false);
    assert_eq!(keda_workers(&default_engine.spec).count(), 0);
    let keda_stream = stream(keda(json!({})), false);
    let names: Vec<_> = keda_workers(&keda_stream.spec)
        .map(|(app, _)| app.name.as_str())
        .collect();
    assert_eq!(names, ["billing"]);
}

#[test]
fn the_status_entry_names_the_scaled_object_and_protocol() {
    let objects = built(
        &stream(keda(json!({})), true),
        &keda_broker(&external(), false, None),
    );
    let s = status("billing", &objects);
    assert_eq!(
        (s.app.as_str(), s.engine),
        ("billing", AutoscaleEngine::Keda)
    );
    assert_eq!(
        s.reason.as_deref(),
        Some("KEDA scales it: ScaledObject shop-billing-worker reads 2 queue(s) over amqp")
    );
}

/// What kube-apiserver answers for a resource it does not serve (no CRD):
/// a plain text body (`plain`), or from some servers and proxies a Status.
fn not_found(plain: bool) -> Response<Body> {
    let body = if plain {
        "404 page not found\n".to_owned()
    } else {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound",
            "details": {}, "code": 404})
        .to_string()
    };
    Response::builder()
        .status(404)
        .header(
            "content-type",
            if plain {
                "text/plain; charset=utf-8"
            } else {
                "application/json"
            },
        )
        .body(Body::from(body.into_bytes()))
        .unwrap()
}

/// Answers the next request with `response`; returns the request's method and path.
async fn answer(api: &mut FakeApi, response: Response<Body>) -> (String, String) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), api.next_request())
        .await
        .expect("a request")
        .unwrap();
    send.send_response(response);
    (
        request.method().to_string(),
        request.uri().path().to_owned(),
    )
}

#[tokio::test]
async fn without_keda_crds_cleanup_finds_nothing_and_applying_says_what_is_missing() {
    let (ctx, mut api) = Context::fake(Settings::default());
    let s = stream(keda(json!({})), false);
    let valid = validate(&s).unwrap();

    // Nothing wanted: the two lists 404, which is no error.
    let server = tokio::spawn(async move {
        let mut paths = Vec::new();
        for plain in [true, false] {
            paths.push(answer(&mut api, not_found(plain)).await);
        }
        (api, paths)
    });
    let done = converge(&ctx, &valid, &[], true).await.unwrap();
    assert_eq!(done, Converged::default());
    let (mut api, paths) = server.await.unwrap();
    assert_eq!(
        paths,
        [
            (
                "GET".into(),
                "/apis/keda.sh/v1alpha1/namespaces/demo/scaledobjects".into()
            ),
            (
                "GET".into(),
                "/apis/keda.sh/v1alpha1/namespaces/demo/triggerauthentications".into()
            ),
        ]
    );

    // Wanted: the first apply 404s, and the error says what to install.
    let wanted = vec![(
        "billing".to_owned(),
        built(&s, &keda_broker(&managed(), false, Some("/"))),
    )];
    let server = tokio::spawn(async move { answer(&mut api, not_found(true)).await });
    let err = converge(&ctx, &valid, &wanted, true).await.unwrap_err();
    assert_eq!(
        server.await.unwrap(),
        (
            "PATCH".into(),
            "/apis/keda.sh/v1alpha1/namespaces/demo/triggerauthentications/shop-billing-worker"
                .into()
        )
    );
    assert_eq!(err.reason(), "KedaNotInstalled");
    assert_eq!(
        err.to_string(),
        "engine KEDA: the cluster has no TriggerAuthentication resource (keda.sh/v1alpha1); install KEDA or its CRDs"
    );
}
