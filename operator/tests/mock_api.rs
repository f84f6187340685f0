//! Tier 1: reconcile against a mocked API server (`tower_test`) that pins
//! the exact requests — method, path, field manager and body — in the order
//! the operator must send them. No cluster needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use eventflow_operator::{
    api::Stream,
    context::{Context, Settings},
    controller::stream::reconcile,
    metrics::Metrics,
};
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::{Client, client::Body, runtime::controller::Action};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn stream(extra: Value) -> Stream {
    let mut base = json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop", "namespace": "demo", "uid": "u-1", "resourceVersion": "41", "generation": 3},
        "spec": {"broker": "rabbit", "apps": [{"name": "account", "image": "a:1", "web": {}}]}
    });
    merge(&mut base, extra);
    serde_json::from_value(base).unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn context() -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (
        Arc::new(Context::new(
            client,
            "test",
            Metrics::new(),
            Settings::default(),
        )),
        handle,
    )
}

/// Takes the next request, checks method and path (and query parts), answers `reply`, returns the JSON body.
async fn expect(
    handle: &mut Handle,
    method: &str,
    path: &str,
    query: &[&str],
    reply: Value,
) -> Value {
    let (request, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .unwrap_or_else(|_| panic!("no {method} {path} request"))
        .expect("the client is alive");
    assert_eq!(request.method().as_str(), method, "{}", request.uri());
    assert_eq!(request.uri().path(), path);
    let q = request.uri().query().unwrap_or_default().to_owned();
    for part in query {
        assert!(q.contains(part), "query {q} lacks {part}");
    }
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    let code = if reply["kind"] == "Status" {
        reply["code"].as_u64().unwrap() as u16
    } else {
        200
    };
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_new_stream_gets_the_finalizer_first_and_then_a_pending_status_while_its_broker_is_missing()
 {
    let (ctx, mut handle) = context();
    let s = stream(json!({}));
    let reply = serde_json::to_value(&s).unwrap();
    let server = tokio::spawn(async move {
        let path = "/apis/eventflow.dev/v1alpha1/namespaces/demo/streams/shop";
        let body = expect(&mut handle, "PATCH", path, &[], reply.clone()).await;
        assert_eq!(
            body,
            json!({"metadata": {"finalizers": ["eventflow.dev/topology"], "resourceVersion": "41"}})
        );
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
        expect(
            &mut handle,
            "GET",
            "/apis/eventflow.dev/v1alpha1/namespaces/demo/eventbrokers/rabbit",
            &[],
            not_found,
        )
        .await;
        let status = expect(
            &mut handle,
            "PATCH",
            &format!("{path}/status"),
            &["fieldManager=eventflow-operator"],
            reply,
        )
        .await;
        assert_eq!(status["status"]["phase"], "Pending");
        let broker = status["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "BrokerReady")
            .unwrap()
            .clone();
        assert_eq!(
            (broker["status"].as_str(), broker["reason"].as_str()),
            (Some("False"), Some("BrokerNotFound"))
        );
        handle
    });
    let action = reconcile(Arc::new(s), ctx).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(30)),
        "checks again at the resync period"
    );
    let mut handle = server.await.unwrap();
    let more = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(
        matches!(more, Err(_) | Ok(None)),
        "nothing is applied without a broker"
    );
}

#[tokio::test]
async fn an_invalid_stream_gets_a_failed_status_and_a_warning_event_and_no_workloads() {
    let (ctx, mut handle) = context();
    let s = stream(json!({
        "metadata": {"finalizers": ["eventflow.dev/topology"]},
        "spec": {"apps": [{"name": "account", "image": "a:1", "web": {}, "env": [{"name": "EVENTFLOW_BINDINGS", "value": "{}"}]}]}
    }));
    let reply = serde_json::to_value(&s).unwrap();
    let server = tokio::spawn(async move {
        let path = "/apis/eventflow.dev/v1alpha1/namespaces/demo/streams/shop/status";
        let body = expect(
            &mut handle,
            "PATCH",
            path,
            &["fieldManager=eventflow-operator", "force=true"],
            reply,
        )
        .await;
        assert_eq!(body["status"]["phase"], "Failed");
        assert_eq!(body["status"]["observedGeneration"], 3);
        let ready = body["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["reason"], "InvalidSpec");
        assert_eq!(ready["observedGeneration"], 3);
        assert!(
            ready["message"]
                .as_str()
                .unwrap()
                .contains("spec.apps[0].env[0].name")
        );
        let event = expect(
            &mut handle,
            "POST",
            "/apis/events.k8s.io/v1/namespaces/demo/events",
            &[],
            json!({}),
        )
        .await;
        assert_eq!(
            (event["type"].as_str(), event["reason"].as_str()),
            (Some("Warning"), Some("InvalidSpec"))
        );
        assert_eq!(event["regarding"]["name"], "shop");
        handle
    });
    let action = reconcile(Arc::new(s), ctx).await.unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "nothing to retry until the spec changes"
    );
    let mut handle = server.await.unwrap();
    let more = tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await;
    assert!(
        matches!(more, Err(_) | Ok(None)),
        "no Deployment or Service is applied for an invalid spec"
    );
}

#[tokio::test]
async fn a_deleted_stream_with_retain_policy_keeps_its_topology_and_releases_the_finalizer() {
    let (ctx, mut handle) = context();
    let s = stream(json!({
        "metadata": {"finalizers": ["example.com/other", "eventflow.dev/topology"], "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"deletionPolicy": "Retain", "apps": [{"name": "account", "image": "a:1", "web": {}, "worker": {},
                 "subscribes": [{"destination": "orders"}]}]}
    }));
    let reply = serde_json::to_value(&s).unwrap();
    let server = tokio::spawn(async move {
        // The broker users go whatever the policy: no broker, none to delete.
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
        expect(
            &mut handle,
            "GET",
            "/apis/eventflow.dev/v1alpha1/namespaces/demo/eventbrokers/rabbit",
            &[],
            not_found,
        )
        .await;
        let event = expect(
            &mut handle,
            "POST",
            "/apis/events.k8s.io/v1/namespaces/demo/events",
            &[],
            json!({}),
        )
        .await;
        assert_eq!(event["reason"], "TopologyRetained");
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("demo.orders.account"),
            "names what was kept"
        );
        let body = expect(
            &mut handle,
            "PATCH",
            "/apis/eventflow.dev/v1alpha1/namespaces/demo/streams/shop",
            &[],
            reply,
        )
        .await;
        assert_eq!(
            body,
            json!({"metadata": {"finalizers": ["example.com/other"], "resourceVersion": "41"}}),
            "other finalizers stay"
        );
    });
    reconcile(Arc::new(s), ctx).await.unwrap();
    server.await.unwrap();
}
