//! `EventBroker`: the RabbitMQ broker a Stream's destinations live on —
//! either run by the operator (`managed`) or brought by the user
//! (`external`), exactly one of the two.

use k8s_openapi::{
    api::core::v1::ResourceRequirements, apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A RabbitMQ broker: managed by the operator or external.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "eventflow.dev",
    version = "v1alpha1",
    kind = "EventBroker",
    namespaced,
    status = "EventBrokerStatus",
    shortname = "efb",
    category = "eventflow",
    doc = "A RabbitMQ broker for Streams: run by the operator (managed) or brought by you (external).",
    printcolumn(name = "Mode", type_ = "string", json_path = ".status.mode", description = "managed or external"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint", description = "host:port of the AMQP listener"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label of at most 40 characters starting with a letter"),
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.managed) != has(self.external)", "message": "set exactly one of managed or external"},
]))]
pub struct EventBrokerSpec {
    /// A RabbitMQ StatefulSet run by the operator, with generated credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedBroker>,

    /// A broker run elsewhere, reached through the `uri` in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalBroker>,
}

/// A broker the operator runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
// A clustered node must come back with its data: one that restarts empty
// cannot rejoin (its peers still count it as a member), starts as a broker
// of its own behind the same Service, and clients reaching it see none of
// the cluster's queues.
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.replicas) || self.replicas == 1 || has(self.storage)",
     "message": "replicas: 3 needs storage: a node must come back with its data to rejoin the cluster",
     "fieldPath": ".storage"},
]))]
pub struct ManagedBroker {
    /// RabbitMQ image following the official image's conventions (default `rabbitmq:4.1-management`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Broker nodes: 1, or 3 for a cluster with quorum queues (needs `storage`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == 1 || self == 3", "message": "replicas must be 1 or 3"}]))]
    pub replicas: Option<i32>,

    /// Persistent storage of each node (its claims are deleted with the EventBroker,
    /// kept on scale-down); without it, data lives as long as the pod. Required with 3 replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,

    /// Compute resources of each broker node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Serve AMQP over TLS only (AMQPS, port 5671; no plaintext listener).
    /// Streams and the operator connect with `amqps` and verify the
    /// broker's certificate against its CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BrokerTls>,
}

/// The TLS listener of a managed broker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerTls {
    /// A Secret of this namespace with `tls.crt`, `tls.key` and `ca.crt`
    /// (a `kubernetes.io/tls` Secret, as cert-manager writes them), valid
    /// for `<broker>.<namespace>.svc`. Without it the operator generates a
    /// CA (Secret `<broker>-ca`) and a server certificate signed by it
    /// (Secret `<broker>-tls`); deleting either makes new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// A PersistentVolumeClaim per broker node, deleted with the EventBroker
/// (a scale-down keeps it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size of each node's volume, e.g. `1Gi`.
    #[schemars(
        length(min = 1, max = 32),
        pattern(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    )]
    pub size: String,

    /// StorageClass of the volumes (default: the cluster's default StorageClass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// A broker the operator does not run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalBroker {
    /// Secret (same namespace) holding the AMQP URI of the broker.
    pub connection_secret: ConnectionSecret,
}

/// Where an external broker's AMQP URI is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSecret {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Key of the AMQP URI in the Secret (default `uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: Option<String>,
}

/// Lifecycle phase of an EventBroker.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BrokerPhase {
    /// Not reconciled yet, its objects are being created, or (three nodes)
    /// not every node is ready.
    #[default]
    Pending,
    /// An AMQP connection with its credentials succeeded on the last check.
    Ready,
    /// The last AMQP connection with its credentials failed.
    Unreachable,
    /// The spec or its Secret cannot be used (see the Ready condition).
    Failed,
}

/// Observed state of an EventBroker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBrokerStatus {
    /// Pending, Ready, Unreachable or Failed.
    #[serde(default)]
    pub phase: BrokerPhase,

    /// `managed` or `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,

    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: an AMQP connection with the broker's credentials succeeded on the last check.
    #[serde(default)]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// `host:port` of the AMQP listener (no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Secret whose `uri` key (or the external broker's key) holds the AMQP URI with credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}
