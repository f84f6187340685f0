//! `Stream`: one event-driven system — a set of microservices (apps) and the
//! destinations that connect them, deployed against one EventBroker.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{EnvFromSource, EnvVar, ResourceRequirements},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    DNS_LABEL_PATTERN, MAX_APP_NAME, MAX_BROKER_NAME, MAX_DESTINATION_NAME,
    autoscale::{Autoscale, AutoscaleStatus},
    spring::{BINDING_PATTERN, DEFAULT_INPUT, MAX_BINDING_NAME, SpringApp},
};

/// A set of microservices and the broker destinations that wire them together.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "eventflow.dev",
    version = "v1alpha1",
    kind = "Stream",
    namespaced,
    status = "StreamStatus",
    shortname = "efs",
    category = "eventflow",
    doc = "An event-driven system: microservices (web and worker roles) and the broker destinations that connect them.",
    printcolumn(name = "Broker", type_ = "string", json_path = ".spec.broker", description = "EventBroker the Stream uses"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Lifecycle phase"),
    printcolumn(name = "Apps Ready", type_ = "string", json_path = ".status.appsReady", description = "Ready workloads / all workloads"),
    printcolumn(name = "Backlog", type_ = "integer", json_path = ".status.backlog", description = "Messages waiting in the consumer groups' queues (ready + unacknowledged)"),
    printcolumn(name = "Dead Letters", type_ = "integer", json_path = ".status.deadLetters", description = "Messages in the consumer groups' dead-letter queues"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.currentRevision", description = "Revision of the effective spec now deployed", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 30 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS label of at most 30 characters starting with a letter (workload names are <stream>-<app>-worker, at most 63)")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.definition) != (has(self.apps) && size(self.apps) > 0)",
     "message": "set either apps or definition (a Data Flow stream definition), not both", "fieldPath": ".apps"},
    {"rule": "has(self.definition) || !has(self.deploymentProperties) || size(self.deploymentProperties) == 0",
     "message": "deploymentProperties go with a definition (an app of apps sets replicas and resources itself)", "fieldPath": ".deploymentProperties"},
]))]
pub struct StreamSpec {
    /// Name of the EventBroker (same namespace) whose broker carries this Stream's destinations.
    #[schemars(length(min = 1, max = MAX_BROKER_NAME), pattern(DNS_LABEL_PATTERN))]
    pub broker: String,

    /// The microservices of the Stream, unique by name (or write `definition` instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub apps: Vec<App>,

    /// The Stream as a Spring Cloud Data Flow stream definition (e.g. `time | transform | log`),
    /// instead of `apps`: each app comes from the AppRegistration `<type>.<name>` of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub definition: Option<String>,

    /// Data Flow deployment properties of a `definition`: `deployer.<label>.count`,
    /// `deployer.<label>.kubernetes.limits.memory|cpu`, `deployer.<label>.kubernetes.requests.memory|cpu`
    /// and `app.<label>.<property>` (`*` for every app).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub deployment_properties: BTreeMap<String, String>,

    /// What happens to the Stream's broker queues and exchanges when the Stream is deleted:
    /// `Delete` removes those no other Stream of the namespace uses, `Retain` keeps them all.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stop the Stream without losing anything: each worker stops taking deliveries and acks what
    /// it holds, then its Deployment scales to zero; web roles scale to zero once their outbox is
    /// relayed. Messages published meanwhile wait in their queues. `false` restores the replicas.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,

    /// How long a suspend waits for the roles to drain before it scales them to zero anyway
    /// (the `Suspended` condition then says `DrainTimedOut` and what was left; default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 3600))]
    pub drain_timeout_seconds: Option<i32>,

    /// Revisions (ControllerRevisions of the effective spec) kept for `history` and `rollback`,
    /// the current one included (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub revision_history_limit: Option<i32>,

    /// Who may reach the Stream's pods and what they may reach: the operator writes a
    /// NetworkPolicy for them unless `isolate` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<super::StreamNetwork>,
}

/// Default of [`StreamSpec::drain_timeout_seconds`].
pub const DEFAULT_DRAIN_TIMEOUT_SECONDS: i32 = 300;
/// Default of [`StreamSpec::revision_history_limit`].
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// What to do with broker topology when its Stream is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the Stream's queues and exchanges unless another Stream still uses them.
    #[default]
    Delete,
    /// Leave every queue and exchange on the broker.
    Retain,
}

/// How an app's roles are packaged into Deployments.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Packaging {
    /// One Deployment per role (`<stream>-<app>-web`, `<stream>-<app>-worker`), scaled independently.
    #[default]
    Separate,
    /// One Deployment `<stream>-<app>` running role `all` with the app's image and the web replicas.
    Combined,
}

/// One bounded-context microservice with a web role, a worker role or both.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.web) || has(self.worker)", "message": "an app needs a web role, a worker role or both"},
    {"rule": "!has(self.worker) || has(self.spring) || (has(self.subscribes) && size(self.subscribes) > 0)",
     "message": "a worker needs at least one subscription", "fieldPath": ".subscribes", "reason": "FieldValueRequired"},
    {"rule": "!has(self.spring) || (!has(self.web) && self.packaging != 'Combined')",
     "message": "a Spring Cloud Stream app runs as a worker role only (no web role, Separate packaging)", "fieldPath": ".spring"},
    {"rule": "!has(self.spring) || !has(self.publishes) || size(self.publishes) == 0",
     "message": "a Spring Cloud Stream app publishes through spring.outputs", "fieldPath": ".publishes"},
    {"rule": "has(self.spring) || !has(self.subscribes) || self.subscribes.all(s, !has(s.binding))",
     "message": "binding names an input binding of a Spring Cloud Stream app: set spring on the app", "fieldPath": ".subscribes"},
    {"rule": "self.packaging != 'Combined' || ((!has(self.web) || (!has(self.web.image) && !has(self.web.resources))) && (!has(self.worker) || (!has(self.worker.image) && !has(self.worker.replicas) && !has(self.worker.resources) && !has(self.worker.autoscale))))",
     "message": "Combined packaging runs one Deployment with the app's image and the web replicas: per-role image, worker replicas, worker autoscale and per-role resources are not allowed", "fieldPath": ".packaging"},
    {"rule": "!has(self.worker) || !has(self.worker.autoscale) || (has(self.subscribes) && size(self.subscribes) > 0)",
     "message": "autoscale follows the backlog of the worker's subscriptions: a worker without any (a source) cannot autoscale", "fieldPath": ".worker.autoscale"},
    {"rule": "has(self.image) || ((!has(self.web) || has(self.web.image)) && (!has(self.worker) || has(self.worker.image)))",
     "message": "set image (or an image on every role)", "fieldPath": ".image", "reason": "FieldValueRequired"},
]))]
pub struct App {
    /// Name of the app, unique in the Stream; part of its Deployment and Service names.
    #[schemars(length(min = 1, max = MAX_APP_NAME), pattern(DNS_LABEL_PATTERN))]
    pub name: String,

    /// Container image of every role (e.g. `eventflow/account:0.1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// `Separate` (a Deployment per role) or `Combined` (one Deployment running role `all`).
    #[serde(default)]
    pub packaging: Packaging,

    /// The HTTP API role: a Deployment and a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebRole>,

    /// The event-processing role: a Deployment consuming the app's subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerRole>,

    /// Extra environment variables of every container of the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub env: Vec<EnvVar>,

    /// Extra environment sources (ConfigMaps, Secrets) of every container of the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub env_from: Vec<EnvFromSource>,

    /// Compute resources of every container of the app (a role may override them with Separate packaging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Destinations the app publishes its events to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = MAX_DESTINATION_NAME), pattern(DNS_LABEL_PATTERN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub publishes: Vec<String>,

    /// Destinations the app's worker consumes, each through a consumer group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub subscribes: Vec<Subscribe>,

    /// Set for a Spring Cloud Stream app (RabbitMQ binder): the operator configures it through
    /// Spring properties instead of the eventflow wiring contract. It runs as a worker role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spring: Option<SpringApp>,
}

/// The web role of an app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebRole {
    /// Number of pods (default 1). With Combined packaging this is the app's replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,

    /// Container port of the HTTP API (default 8080; 9090 is the admin port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self != 9090", "message": "port 9090 is the admin port of every role"}]))]
    pub port: Option<i32>,

    /// Image of the web role (Separate packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Compute resources of the web role (Separate packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The worker role of an app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.autoscale) || !has(self.replicas) || (self.replicas >= (has(self.autoscale.minReplicas) ? self.autoscale.minReplicas : 1) && self.replicas <= self.autoscale.maxReplicas)",
     "message": "with autoscale, replicas is the starting point: it must lie between minReplicas (default 1) and maxReplicas", "fieldPath": ".replicas"},
]))]
pub struct WorkerRole {
    /// Number of pods (default 1; Separate packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,

    /// Messages a worker may hold unacknowledged (AMQP prefetch, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub prefetch: Option<i32>,

    /// Messages a worker processes at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub concurrency: Option<i32>,

    /// Image of the worker role (Separate packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Compute resources of the worker role (Separate packaging only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Follow the backlog of the role's consumer groups between minReplicas and maxReplicas
    /// (Separate packaging only); `replicas` is then the starting point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

/// A subscription of an app's worker to a destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscribe {
    /// Destination to consume.
    #[schemars(length(min = 1, max = MAX_DESTINATION_NAME), pattern(DNS_LABEL_PATTERN))]
    pub destination: String,

    /// Consumer group (default: the app name). Every group gets its own copy of each event;
    /// the replicas of a group share the work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_DESTINATION_NAME), pattern(DNS_LABEL_PATTERN))]
    pub group: Option<String>,

    /// Routing-key patterns (`<aggregate>.<EVENT>`, with `*` and `#` wildcards) the group receives;
    /// empty means every event of the destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(
            length(min = 1, max = 255),
            pattern(r"^[A-Za-z0-9_*#-]+(\.[A-Za-z0-9_*#-]+)*$")
        )
    )]
    pub event_types: Vec<String>,

    /// Deliveries of one message before it is dead-lettered (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<u32>,

    /// Delay in milliseconds before a failed message is delivered again (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86_400_000))]
    pub backoff_ms: Option<u32>,

    /// Input binding of a Spring Cloud Stream app that consumes this subscription (default
    /// `input`; functional apps use `<function>-in-<n>`). Only for apps with `spring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_BINDING_NAME), pattern(BINDING_PATTERN))]
    pub binding: Option<String>,
}

impl Subscribe {
    /// The input binding of a Spring Cloud Stream app.
    pub fn binding(&self) -> &str {
        self.binding.as_deref().unwrap_or(DEFAULT_INPUT)
    }
}

/// Lifecycle phase of a Stream.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StreamPhase {
    /// Not reconciled yet, or waiting for its EventBroker.
    #[default]
    Pending,
    /// Workloads applied, not all ready yet.
    Deploying,
    /// Every workload ready and the topology declared.
    Running,
    /// Was running; something is not ready any more.
    Degraded,
    /// The spec cannot be deployed (see the Ready condition).
    Failed,
    /// Being deleted; the finalizer removes its broker topology.
    Deleting,
    /// `spec.suspend` is set: draining or drained (see the Suspended condition).
    Suspended,
}

/// Observed state of a Stream.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// Lifecycle phase: Pending, Deploying, Running, Degraded, Failed or Deleting.
    #[serde(default)]
    pub phase: StreamPhase,

    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// BrokerReady, TopologyReady, AppsReady and Ready.
    #[serde(default)]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// Ready workloads out of all workloads, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps_ready: Option<String>,

    /// One entry per Deployment of the Stream.
    #[serde(default)]
    pub workloads: Vec<WorkloadStatus>,

    /// The broker objects of every destination the Stream uses.
    #[serde(default)]
    pub destinations: Vec<DestinationStatus>,

    /// Number of the revision (ControllerRevision `<stream>-<hash>`) of the effective spec now deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<i64>,

    /// Messages waiting in every consumer group's queue (ready + unacknowledged), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,

    /// Messages in every consumer group's dead-letter queue, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,

    /// Backlog and dead letters of each consumer group, as the broker reported them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupStatus>,

    /// The autoscaler's last decision for each autoscaled worker role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub autoscale: Vec<AutoscaleStatus>,

    /// When the broker's queue figures in `groups` were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_observed_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// What one consumer group of a destination holds on the broker. Counts the broker
/// does not give (AMQP without the management API: unacknowledged, rates) are absent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// Destination the group consumes.
    pub destination: String,
    /// Consumer group.
    pub group: String,
    /// App whose worker consumes for the group.
    pub app: String,
    /// The group's queue.
    pub queue: String,
    /// Messages ready for delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<i64>,
    /// Messages delivered and not acknowledged yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unacknowledged: Option<i64>,
    /// Consumers on the group's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<i64>,
    /// The group's dead-letter queue.
    pub dead_letter_queue: String,
    /// Messages in the dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<i64>,
    /// Messages published to the group's queue per second (management API only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    /// Messages delivered from the group's queue per second (management API only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
}

/// Replica counts of one Deployment of a Stream.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// App name.
    pub app: String,
    /// Role the Deployment runs: web, worker or all.
    pub role: String,
    /// Deployment name.
    pub deployment: String,
    /// Desired pods.
    pub replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// Pods running the current pod template (0 until the Deployment
    /// controller has seen the current template).
    pub updated_replicas: i32,
    /// Pods still running an earlier pod template: a rollout is under way
    /// while there are any.
    #[serde(default)]
    pub old_replicas: i32,
}

/// Broker objects of one destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// Destination name.
    pub name: String,
    /// Topic exchange of the destination.
    pub exchange: String,
    /// Group, retry and dead-letter queues of the destination's consumer groups.
    #[serde(default)]
    pub queues: Vec<String>,
}
