//! `spec.network` of a Stream: the NetworkPolicy the operator writes for
//! its pods, on unless `isolate: false`.

use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyPeer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who may reach a Stream's pods and what they may reach. By default a pod
/// of the Stream accepts traffic from the Stream's own pods, from the
/// operator's namespace (drain requests, the dashboard) and from the other
/// Streams of the namespace whose apps name one of its Services in their
/// environment; it may reach the Stream's own pods, DNS, its broker, the
/// Streams it names, and pods labelled `eventflow.dev/streams-may-reach: "true"`
/// (a database) in its namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamNetwork {
    /// `false` writes no NetworkPolicy: the Stream's pods accept and send anything (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolate: Option<bool>,

    /// More peers that may reach the Stream's pods (an ingress controller's namespace, a
    /// Prometheus); `kubectl port-forward` is never filtered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ingress_from: Vec<NetworkPolicyPeer>,

    /// More egress rules of every pod of the Stream (a database in another namespace or
    /// outside the cluster, an external API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub egress: Vec<NetworkPolicyEgressRule>,
}

impl StreamNetwork {
    /// Whether the Stream gets its NetworkPolicy.
    pub fn isolated(network: Option<&Self>) -> bool {
        network.and_then(|n| n.isolate).unwrap_or(true)
    }
}
