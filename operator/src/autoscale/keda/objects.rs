//! Pure: the KEDA objects of one autoscaled worker role. A `ScaledObject`
//! (keda.sh/v1alpha1) scales the worker's Deployment on the backlog of its
//! consumer group queues — one `rabbitmq` trigger per queue, their sum per
//! replica against `backlogPerReplica` — within the same bounds, windows and
//! steps the Operator engine uses; a `TriggerAuthentication` of the same
//! name hands KEDA the broker's address and credentials from the broker's
//! own Secret (nothing is copied).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use crate::{
    api::{App, Autoscale, AutoscaleEngine, StreamSpec},
    backlog::{MANAGEMENT_URI_KEY, figures},
    connection::BrokerWiring,
    naming,
    validate::ValidStream,
};

pub const GROUP: &str = "keda.sh";
pub const VERSION: &str = "v1alpha1";
/// Seconds between two reads of the queues by KEDA.
pub const POLLING_INTERVAL_SECONDS: i32 = 5;
/// Period of the HPA's Pods policy: `maxStep` replicas per this many seconds.
pub const POLICY_PERIOD_SECONDS: i32 = 15;
/// Annotation of the ScaledObject saying how KEDA reads the queues and what it counts.
pub const PROTOCOL_ANNOTATION: &str = "eventflow.dev/keda-protocol";

/// The `scaledobjects` resource of KEDA.
pub fn scaled_objects() -> ApiResource {
    resource("ScaledObject", "scaledobjects")
}

/// The `triggerauthentications` resource of KEDA.
pub fn trigger_authentications() -> ApiResource {
    resource("TriggerAuthentication", "triggerauthentications")
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// How KEDA's rabbitmq trigger reads a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The management API: messages ready + unacknowledged.
    Http,
    /// A passive declare over AMQP: messages ready only (kedacore/keda#638).
    Amqp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Amqp => "amqp",
        }
    }
}

/// Where KEDA finds the broker: a key of the broker's Secret (in the Stream's namespace).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KedaBroker {
    /// The broker's Secret.
    pub secret: String,
    /// Its key holding the URI KEDA connects to (trigger parameter `host`).
    pub key: String,
    pub protocol: Protocol,
    /// The virtual host of the apps' AMQP URI, when known.
    pub vhost: Option<String>,
    /// What KEDA counts and why (the ScaledObject's [`PROTOCOL_ANNOTATION`]).
    pub note: String,
}

/// How KEDA reaches the broker of `wiring`: over its management API when
/// the broker's Secret has one (`has_management_uri`; a managed broker's
/// always does), else over AMQP. `vhost` is the apps' AMQP URI's.
pub fn keda_broker(
    wiring: &BrokerWiring,
    has_management_uri: bool,
    vhost: Option<&str>,
) -> KedaBroker {
    let secret = wiring.secret.name.clone();
    let (protocol, key, note) = if wiring.mode == crate::connection::MANAGED || has_management_uri {
        (
            Protocol::Http,
            MANAGEMENT_URI_KEY.to_owned(),
            format!(
                "http: the management API of Secret {secret} key {MANAGEMENT_URI_KEY}; KEDA counts messages ready + unacknowledged"
            ),
        )
    } else {
        (
            Protocol::Amqp,
            wiring.secret.key.clone(),
            format!(
                "amqp: Secret {secret} has no key {MANAGEMENT_URI_KEY}, so KEDA counts only messages ready (not those delivered and unacknowledged); add the key for http"
            ),
        )
    };
    KedaBroker {
        secret,
        key,
        protocol,
        vhost: vhost.map(str::to_owned),
        note,
    }
}

/// One autoscaled worker's KEDA objects, both named like its Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct KedaObjects {
    pub scaled_object: DynamicObject,
    pub trigger_authentication: DynamicObject,
}

impl KedaObjects {
    /// The name of both objects (the worker Deployment's).
    pub fn name(&self) -> &str {
        self.scaled_object
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
    }

    /// The queues the triggers read, in trigger order.
    pub fn queues(&self) -> Vec<String> {
        self.scaled_object.data["spec"]["triggers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["metadata"]["queueName"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The apps of `spec` whose worker role KEDA scales, with their autoscale.
pub fn keda_workers(spec: &StreamSpec) -> impl Iterator<Item = (&App, &Autoscale)> {
    spec.apps.iter().filter_map(|app| {
        let autoscale = app.worker.as_ref()?.autoscale.as_ref()?;
        (autoscale.engine() == AutoscaleEngine::Keda).then_some((app, autoscale))
    })
}

/// The KEDA objects of `app`'s worker role; `None` when it has no worker
/// Deployment, no queue to scale on or no `backlogPerReplica` (none of
/// which a valid Stream with engine KEDA lacks: validate requires a
/// worker's subscription, admission `backlogPerReplica`).
pub fn build(
    stream: &ValidStream<'_>,
    app: &App,
    autoscale: &Autoscale,
    broker: &KedaBroker,
) -> Option<KedaObjects> {
    let worker = naming::workloads(stream.name, app)
        .into_iter()
        .find(|w| w.role == "worker")?;
    let per_replica = autoscale.backlog_per_replica?;
    let queues: Vec<String> = figures::groups(stream.namespace, std::slice::from_ref(app))
        .into_iter()
        .map(|g| g.queue)
        .collect();
    if queues.is_empty() {
        return None;
    }
    let mut labels = naming::stream_labels(stream.name);
    labels.insert(naming::LABEL_APP.into(), app.name.clone());
    labels.insert(naming::LABEL_ROLE.into(), worker.role.into());
    let meta = |annotations: Option<BTreeMap<String, String>>| ObjectMeta {
        name: Some(worker.name.clone()),
        namespace: Some(stream.namespace.to_owned()),
        labels: Some(labels.clone()),
        annotations,
        owner_references: Some(vec![stream.owner.clone()]),
        ..Default::default()
    };
    let annotations = BTreeMap::from([(PROTOCOL_ANNOTATION.to_owned(), broker.note.clone())]);
    let mut scaled_object = DynamicObject::new(&worker.name, &scaled_objects()).data(json!({
        "spec": scaled_object_spec(&worker.name, autoscale, per_replica, &queues, broker)
    }));
    scaled_object.metadata = meta(Some(annotations));
    let mut trigger_authentication = DynamicObject::new(&worker.name, &trigger_authentications())
        .data(json!({
            "spec": {"secretTargetRef": [
                {"parameter": "host", "name": broker.secret, "key": broker.key}
            ]}
        }));
    trigger_authentication.metadata = meta(None);
    Some(KedaObjects {
        scaled_object,
        trigger_authentication,
    })
}

fn scaled_object_spec(
    deployment: &str,
    autoscale: &Autoscale,
    per_replica: i32,
    queues: &[String],
    broker: &KedaBroker,
) -> Value {
    let triggers: Vec<Value> = queues
        .iter()
        .enumerate()
        .map(|(i, queue)| {
            let mut metadata = json!({
                "queueName": queue,
                "mode": "QueueLength",
                "value": per_replica.to_string(),
                "protocol": broker.protocol.as_str(),
            });
            // Given whenever known (also `/`): KEDA would otherwise take the management URI's
            // last path segment for the vhost.
            if let Some(vhost) = &broker.vhost {
                metadata["vhostName"] = json!(vhost);
            }
            json!({
                "type": "rabbitmq",
                "name": trigger_name(i),
                "metadata": metadata,
                "authenticationRef": {"name": deployment},
            })
        })
        .collect();
    let rule = |window: i32, step: i32| {
        json!({
            "stabilizationWindowSeconds": window,
            "policies": [{"type": "Pods", "value": step, "periodSeconds": POLICY_PERIOD_SECONDS}],
        })
    };
    let mut advanced = json!({
        "horizontalPodAutoscalerConfig": {"behavior": {
            "scaleUp": rule(autoscale.up_window_seconds(), autoscale.up_step()),
            "scaleDown": rule(autoscale.down_window_seconds(), autoscale.down_step()),
        }},
    });
    // The backlog of the role is the sum over its queues (the HPA alone
    // would take the busiest queue's replicas).
    if queues.len() > 1 {
        let formula: Vec<String> = (0..queues.len()).map(trigger_name).collect();
        advanced["scalingModifiers"] = json!({
            "formula": formula.join(" + "),
            "target": per_replica.to_string(),
            "metricType": "AverageValue",
        });
    }
    json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicaCount": autoscale.min(),
        "maxReplicaCount": autoscale.max_replicas,
        "pollingInterval": POLLING_INTERVAL_SECONDS,
        "cooldownPeriod": autoscale.down_window_seconds(),
        "advanced": advanced,
        "triggers": triggers,
    })
}

/// Trigger `i`'s name: a variable of the scaling formula.
fn trigger_name(i: usize) -> String {
    format!("q{i}")
}
