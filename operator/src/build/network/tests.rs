#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::{api::EventBroker, connection::broker_wiring, validate::validate};

fn stream(yaml: &str) -> Stream {
    serde_yaml::from_str(yaml).unwrap()
}

const SHOP: &str = r"
apiVersion: eventflow.dev/v1alpha1
kind: Stream
metadata: {name: shop, namespace: demo, uid: u-shop}
spec:
  broker: rabbit
  apps:
    - name: order
      image: order:1
      web: {}
      worker: {}
      publishes: [order]
      subscribes: [{destination: order, eventTypes: ['order.*']}]
";

const LOAD: &str = r"
apiVersion: eventflow.dev/v1alpha1
kind: Stream
metadata: {name: load, namespace: demo, uid: u-load}
spec:
  broker: rabbit
  apps:
    - name: simulator
      image: sim:1
      web: {}
      env:
        - {name: EVENTFLOW_PEER_ORDER_URL, value: 'http://shop-order-web:8080'}
";

const AUDIT: &str = r"
apiVersion: eventflow.dev/v1alpha1
kind: Stream
metadata: {name: audit, namespace: demo, uid: u-audit}
spec:
  broker: rabbit
  apps:
    - name: log
      image: log:1
      worker: {}
      env:
        - {name: UNRELATED, value: 'http://shop-order-web-backup:8080'}
      subscribes: [{destination: order, eventTypes: ['#']}]
";

fn broker(spec: Value) -> BrokerWiring {
    let b: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit", "namespace": "demo"},
        "spec": spec
    }))
    .unwrap();
    broker_wiring(&b)
}

fn policy(of: &Stream, streams: &[Stream], wiring: &BrokerWiring, port: Option<u16>) -> Value {
    let valid = validate(of).unwrap();
    let inputs = NetworkInputs {
        streams,
        broker: wiring,
        broker_port: port,
        operator_namespace: Some("eventflow-system"),
    };
    serde_json::to_value(network_policy(&valid, &inputs).unwrap()).unwrap()
}

#[test]
fn a_stream_admits_its_own_pods_the_operator_and_the_streams_that_call_it() {
    let (shop, load, audit) = (stream(SHOP), stream(LOAD), stream(AUDIT));
    let all = [shop.clone(), load.clone(), audit.clone()];
    let p = policy(&shop, &all, &broker(json!({"managed": {}})), None);
    assert_eq!(p["metadata"]["name"], "shop");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Stream");
    assert_eq!(
        p["spec"]["podSelector"],
        json!({"matchLabels": {"eventflow.dev/stream": "shop"}})
    );
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        p["spec"]["ingress"],
        json!([
            {"from": [{"podSelector": {"matchLabels": {"eventflow.dev/stream": "shop"}}}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "eventflow-system"}}}]},
            // The load Stream names shop-order-web; audit's look-alike host does not count.
            {"from": [{"podSelector": {"matchLabels": {"eventflow.dev/stream": "load"}}}]},
        ])
    );
}

#[test]
fn a_stream_reaches_its_pods_dns_its_managed_broker_the_streams_it_calls_and_labelled_pods() {
    let (shop, load) = (stream(SHOP), stream(LOAD));
    let all = [shop.clone(), load.clone()];
    let p = policy(&load, &all, &broker(json!({"managed": {}})), None);
    assert_eq!(
        p["spec"]["egress"],
        json!([
            {"to": [{"podSelector": {"matchLabels": {"eventflow.dev/stream": "load"}}}]},
            {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]},
            {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rabbitmq", "eventflow.dev/broker": "rabbit"}}}]},
            {"to": [{"podSelector": {"matchLabels": {"eventflow.dev/stream": "shop"}}}]},
            {"to": [{"podSelector": {"matchLabels": {"eventflow.dev/streams-may-reach": "true"}}}]},
        ])
    );
    // Nobody calls load: only its own pods and the operator's namespace reach it.
    assert_eq!(p["spec"]["ingress"].as_array().unwrap().len(), 2);
}

#[test]
fn an_external_broker_is_reached_on_its_uris_port_anywhere() {
    let shop = stream(SHOP);
    let external = broker(json!({"external": {"connectionSecret": {"name": "uri"}}}));
    let p = policy(&shop, std::slice::from_ref(&shop), &external, Some(5671));
    assert_eq!(
        p["spec"]["egress"][2],
        json!({"ports": [{"port": 5671, "protocol": "TCP"}]})
    );
    let p = policy(&shop, std::slice::from_ref(&shop), &external, None);
    assert_eq!(
        p["spec"]["egress"][2]["ports"],
        json!([{"port": 5672, "protocol": "TCP"}, {"port": 5671, "protocol": "TCP"}])
    );
}

#[test]
fn the_spec_adds_peers_and_egress_rules_or_turns_isolation_off() {
    let mut shop = stream(SHOP);
    shop.spec.network = Some(serde_json::from_value(json!({
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}],
        "egress": [{"to": [{"ipBlock": {"cidr": "198.19.10.0/24"}}], "ports": [{"port": 5432}]}],
    }))
    .unwrap());
    let wiring = broker(json!({"managed": {}}));
    let p = policy(&shop, std::slice::from_ref(&shop), &wiring, None);
    let ingress = p["spec"]["ingress"].as_array().unwrap();
    assert_eq!(
        ingress.last().unwrap(),
        &json!({"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]})
    );
    let egress = p["spec"]["egress"].as_array().unwrap();
    assert_eq!(
        egress.last().unwrap(),
        &json!({"to": [{"ipBlock": {"cidr": "198.19.10.0/24"}}], "ports": [{"port": 5432}]})
    );

    shop.spec.network = Some(serde_json::from_value(json!({"isolate": false})).unwrap());
    let valid = validate(&shop).unwrap();
    let inputs = NetworkInputs {
        streams: &[],
        broker: &wiring,
        broker_port: None,
        operator_namespace: None,
    };
    assert!(network_policy(&valid, &inputs).is_none());
}

#[test]
fn a_url_names_a_service_by_its_short_namespaced_or_full_name_only() {
    let services = ["shop-order-web".to_owned()];
    let caller = |url: &str| {
        stream(&format!(
            "apiVersion: eventflow.dev/v1alpha1\nkind: Stream\nmetadata: {{name: c, namespace: demo}}\nspec:\n  broker: rabbit\n  apps:\n    - {{name: a, image: a:1, web: {{}}, env: [{{name: U, value: '{url}'}}]}}\n"
        ))
    };
    for url in [
        "http://shop-order-web:8080",
        "http://shop-order-web.demo:8080/v1",
        "http://shop-order-web.demo.svc:8080",
        "https://shop-order-web.demo.svc.cluster.local/x",
        "http://shop-order-web",
    ] {
        assert!(names_any(&caller(url), &services, "demo"), "{url}");
    }
    for url in [
        "http://shop-order-web-2:8080",
        "http://shop-order-web.other:8080",
        "shop-order-web:8080",
        "http://x/shop-order-web",
    ] {
        assert!(!names_any(&caller(url), &services, "demo"), "{url}");
    }
}
