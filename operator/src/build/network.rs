//! A Stream's NetworkPolicy (`<stream>`, selecting every pod of the Stream),
//! unless `spec.network.isolate` is false. Ingress from: the Stream's own
//! pods, the operator's namespace (drain requests, the dashboard's passage
//! to a counter or load simulator), the Streams of the namespace that name
//! one of its web Services in their apps' environment, and
//! `spec.network.ingressFrom`. Egress to: the Stream's own pods, DNS, its
//! broker (a managed one's pods; an external one's port anywhere), the
//! Streams it names, pods of the namespace labelled [`REACHABLE_LABEL`] (a
//! database), and `spec.network.egress`. Kubelet probes come from the node
//! and `kubectl port-forward` enters the pod from inside: neither is
//! filtered.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{
        NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
        NetworkPolicyPort, NetworkPolicySpec,
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use crate::{
    api::{Stream, StreamNetwork},
    connection::{AMQP_PORT, BrokerWiring, MANAGED},
    naming::{self, LABEL_STREAM},
    validate::ValidStream,
};

/// A pod of the namespace with this label set to `"true"` may be reached by
/// every Stream of the namespace (a database the Streams share).
pub const REACHABLE_LABEL: &str = "eventflow.dev/streams-may-reach";

/// What a Stream's policy depends on besides the Stream itself.
pub struct NetworkInputs<'a> {
    /// The Streams of the namespace, definitions expanded (the Stream itself may be among them).
    pub streams: &'a [Stream],
    pub broker: &'a BrokerWiring,
    /// The port of the broker's URI: an external broker is reached on it, anywhere.
    pub broker_port: Option<u16>,
    /// The namespace the operator (and the dashboard) run in.
    pub operator_namespace: Option<&'a str>,
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: labels(pairs),
        ..Default::default()
    }
}

/// The pods of Stream `name` (of the policy's namespace).
fn stream_pods(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector(&[(LABEL_STREAM, name)])),
        ..Default::default()
    }
}

/// Every pod of namespace `name`.
fn namespace_pods(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", name)])),
        ..Default::default()
    }
}

/// The cluster DNS, in any namespace (its pods' conventional label).
fn dns() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(selector(&[("k8s-app", "kube-dns")])),
        ..Default::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The host of a URL in `value` (`scheme://host[:port][/...]`), if any.
fn url_host(value: &str) -> Option<&str> {
    let rest = value.split_once("://")?.1;
    let end = rest.find([':', '/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The web Services of `stream`'s apps.
fn web_services(stream: &Stream) -> Vec<String> {
    let name = stream.metadata.name.as_deref().unwrap_or_default();
    stream
        .spec
        .apps
        .iter()
        .filter_map(|a| naming::web_service(name, a))
        .collect()
}

/// Whether an app of `caller` names one of `services` as the host of a URL
/// in its environment or Spring properties (`http://svc:8080`,
/// `http://svc.ns.svc:8080`).
fn names_any(caller: &Stream, services: &[String], namespace: &str) -> bool {
    let values = caller.spec.apps.iter().flat_map(|a| {
        a.env.iter().filter_map(|e| e.value.as_deref()).chain(
            a.spring
                .iter()
                .flat_map(|s| s.properties.values().map(String::as_str)),
        )
    });
    values.filter_map(url_host).any(|host| {
        services.iter().any(|s| {
            host == s
                || host
                    .strip_prefix(s.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| {
                        rest == namespace || rest.starts_with(&format!("{namespace}."))
                    })
        })
    })
}

/// The NetworkPolicy of `stream`, `None` when it is not isolated.
pub fn network_policy(
    stream: &ValidStream<'_>,
    inputs: &NetworkInputs<'_>,
) -> Option<NetworkPolicy> {
    let network = stream.spec().network.as_ref();
    if !StreamNetwork::isolated(network) {
        return None;
    }
    let (name, namespace) = (stream.name, stream.namespace);
    let own = web_services(stream.stream);
    let others = inputs
        .streams
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some(name));
    let (mut callers, mut callees) = (Vec::new(), Vec::new());
    for other in others {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        if names_any(other, &own, namespace) {
            callers.push(stream_pods(other_name));
        }
        if names_any(stream.stream, &web_services(other), namespace) {
            callees.push(stream_pods(other_name));
        }
    }

    let from = |peers: Vec<NetworkPolicyPeer>| NetworkPolicyIngressRule {
        from: Some(peers),
        ports: None,
    };
    let mut ingress = vec![from(vec![stream_pods(name)])];
    if let Some(ns) = inputs.operator_namespace {
        ingress.push(from(vec![namespace_pods(ns)]));
    }
    if !callers.is_empty() {
        ingress.push(from(callers));
    }
    if let Some(peers) = network.map(|n| &n.ingress_from).filter(|p| !p.is_empty()) {
        ingress.push(from(peers.clone()));
    }

    let to = |peers: Vec<NetworkPolicyPeer>| NetworkPolicyEgressRule {
        to: Some(peers),
        ports: None,
    };
    let mut egress = vec![to(vec![stream_pods(name)]), to(vec![dns()])];
    egress.push(if inputs.broker.mode == MANAGED {
        to(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(naming::broker_selector(&stream.spec().broker)),
                ..Default::default()
            }),
            ..Default::default()
        }])
    } else {
        // Where an external broker is, only its URI knows: its port, anywhere.
        let ports = match inputs.broker_port {
            Some(port) => vec![tcp(i32::from(port))],
            None => vec![tcp(AMQP_PORT), tcp(crate::build::broker::tls::AMQPS_PORT)],
        };
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(ports),
        }
    });
    if !callees.is_empty() {
        egress.push(to(callees));
    }
    egress.push(to(vec![NetworkPolicyPeer {
        pod_selector: Some(selector(&[(REACHABLE_LABEL, "true")])),
        ..Default::default()
    }]));
    egress.extend(network.into_iter().flat_map(|n| n.egress.iter().cloned()));

    Some(NetworkPolicy {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(naming::stream_labels(name)),
            owner_references: Some(vec![stream.owner.clone()]),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(&[(LABEL_STREAM, name)])),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    })
}

#[cfg(test)]
mod tests;
