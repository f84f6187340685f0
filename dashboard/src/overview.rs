//! The tables of the front page: every Stream and EventBroker with phase,
//! conditions (and their reasons), revision and creation time, and the
//! recent Kubernetes Events of our objects and the workloads they own.

use eventflow_operator::api::{BrokerPhase, ConditionView, EventBroker, Stream, StreamPhase};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;

use crate::graph::{self, Health};

fn conditions(list: &[Condition]) -> Vec<ConditionView> {
    list.iter().map(ConditionView::from).collect()
}

/// RFC 3339, as the API server wrote it; the page computes ages.
fn timestamp<T: Serialize>(time: Option<&T>) -> Option<String> {
    time.and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StreamRow {
    pub namespace: String,
    pub name: String,
    pub broker: String,
    pub phase: StreamPhase,
    pub health: Health,
    /// Written as a Data Flow definition (`spec.definition`).
    pub definition: Option<String>,
    pub apps_ready: Option<String>,
    pub backlog: Option<i64>,
    pub dead_letters: Option<i64>,
    pub revision: Option<i64>,
    pub created: Option<String>,
    pub conditions: Vec<ConditionView>,
}

/// The row of `stream` (effective); its health is its graph's.
pub fn stream_row(stream: &Stream, all: &[Stream]) -> StreamRow {
    stream_row_of(stream, graph::graph(stream, all).health)
}

/// The row of `stream` whose graph, already drawn, has `health`.
pub fn stream_row_of(stream: &Stream, health: Health) -> StreamRow {
    let status = stream.status.clone().unwrap_or_default();
    StreamRow {
        namespace: stream.metadata.namespace.clone().unwrap_or_default(),
        name: stream.metadata.name.clone().unwrap_or_default(),
        broker: stream.spec.broker.clone(),
        phase: status.phase,
        health,
        definition: stream.spec.definition.clone(),
        apps_ready: status.apps_ready,
        backlog: status.backlog,
        dead_letters: status.dead_letters,
        revision: status.current_revision,
        created: timestamp(stream.metadata.creation_timestamp.as_ref()),
        conditions: conditions(&status.conditions),
    }
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerRow {
    pub namespace: String,
    pub name: String,
    /// `managed` or `external`.
    pub mode: Option<String>,
    pub phase: BrokerPhase,
    pub health: Health,
    pub endpoint: Option<String>,
    pub created: Option<String>,
    pub conditions: Vec<ConditionView>,
}

pub fn broker_row(broker: &EventBroker) -> BrokerRow {
    let status = broker.status.clone().unwrap_or_default();
    BrokerRow {
        namespace: broker.metadata.namespace.clone().unwrap_or_default(),
        name: broker.metadata.name.clone().unwrap_or_default(),
        mode: status.mode,
        phase: status.phase,
        health: match status.phase {
            BrokerPhase::Ready => Health::Healthy,
            BrokerPhase::Pending => Health::Progressing,
            BrokerPhase::Unreachable | BrokerPhase::Failed => Health::Down,
        },
        endpoint: status.endpoint,
        created: timestamp(broker.metadata.creation_timestamp.as_ref()),
        conditions: conditions(&status.conditions),
    }
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    pub namespace: String,
    /// The object the event is about: `Stream/shop`, `Pod/shop-order-web-…`.
    pub object: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last: Option<String>,
}

/// Kinds whose events are shown when they are ours or a workload of ours.
const KINDS: &[&str] = &[
    "Stream",
    "EventBroker",
    "DeadLetterRedrive",
    "AppRegistration",
    "Deployment",
    "ReplicaSet",
    "Pod",
    "StatefulSet",
    "HorizontalPodAutoscaler",
];

/// The latest `limit` events about our objects, newest first: events of
/// our kinds, and of workloads named after a Stream or an EventBroker of
/// the same namespace (`<stream>-…`, `<broker>-…`).
pub fn recent_events(
    events: &[Event],
    streams: &[Stream],
    brokers: &[EventBroker],
    limit: usize,
) -> Vec<EventRow> {
    let ours = |namespace: &str, kind: &str, name: &str| {
        if !KINDS.contains(&kind) {
            return false;
        }
        if matches!(
            kind,
            "Stream" | "EventBroker" | "DeadLetterRedrive" | "AppRegistration"
        ) {
            return true;
        }
        let owner_named = |owner: Option<&String>, owner_ns: Option<&String>| {
            owner_ns.map(String::as_str) == Some(namespace)
                && owner.is_some_and(|o| name.starts_with(&format!("{o}-")) || name == o)
        };
        streams
            .iter()
            .any(|s| owner_named(s.metadata.name.as_ref(), s.metadata.namespace.as_ref()))
            || brokers
                .iter()
                .any(|b| owner_named(b.metadata.name.as_ref(), b.metadata.namespace.as_ref()))
    };
    let mut rows: Vec<EventRow> = events
        .iter()
        .filter_map(|e| {
            let namespace = e.metadata.namespace.clone().unwrap_or_default();
            let kind = e.involved_object.kind.clone().unwrap_or_default();
            let name = e.involved_object.name.clone().unwrap_or_default();
            if !ours(&namespace, &kind, &name) {
                return None;
            }
            let last = timestamp(e.last_timestamp.as_ref())
                .or_else(|| timestamp(e.event_time.as_ref()))
                .or_else(|| timestamp(e.metadata.creation_timestamp.as_ref()));
            Some(EventRow {
                namespace,
                object: format!("{kind}/{name}"),
                type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
                count: e.count.unwrap_or(1),
                last,
            })
        })
        .collect();
    // RFC 3339 in UTC sorts as text; a missing time goes last.
    rows.sort_by(|a, b| b.last.cmp(&a.last));
    rows.truncate(limit);
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: &str, name: &str, reason: &str, last: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.1"), "namespace": "demo"},
            "involvedObject": {"kind": kind, "name": name, "namespace": "demo"},
            "type": "Warning", "reason": reason, "message": "m", "count": 2,
            "lastTimestamp": last
        }))
        .unwrap()
    }

    fn stream() -> Stream {
        serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "shop", "namespace": "demo",
                         "creationTimestamp": "2026-12-01T10:00:00Z"},
            "spec": {"broker": "rabbit", "apps": [{"name": "a", "image": "i", "web": {}}]},
            "status": {"phase": "Degraded", "appsReady": "0/1", "backlog": 12,
                       "deadLetters": 3, "currentRevision": 4,
                       "conditions": [{"type": "Ready", "status": "False", "reason": "WorkloadsNotReady",
                                       "message": "shop-a-web: 0/1 ready",
                                       "lastTransitionTime": "2026-12-01T10:01:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_stream_row_carries_phase_conditions_revision_and_figures() {
        let s = stream();
        let row = stream_row(&s, std::slice::from_ref(&s));
        assert_eq!(row.phase, StreamPhase::Degraded);
        assert_eq!(row.health, Health::Degraded);
        assert_eq!(
            (
                row.apps_ready.as_deref(),
                row.backlog,
                row.dead_letters,
                row.revision
            ),
            (Some("0/1"), Some(12), Some(3), Some(4))
        );
        assert_eq!(row.created.as_deref(), Some("2026-12-01T10:00:00Z"));
        assert_eq!(row.conditions[0].reason, "WorkloadsNotReady");
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["conditions"][0]["type"], "Ready");
        assert_eq!(json["appsReady"], "0/1");
    }

    #[test]
    fn events_of_our_objects_and_their_workloads_newest_first() {
        let events = [
            event("Stream", "shop", "Applied", "2026-12-01T10:00:02Z"),
            event(
                "Pod",
                "shop-a-web-5d8c-x1",
                "BackOff",
                "2026-12-01T10:00:05Z",
            ),
            event("Pod", "someone-else-1", "BackOff", "2026-12-01T10:00:09Z"),
            event("Node", "shop-node", "Rebooted", "2026-12-01T10:00:09Z"),
            event(
                "StatefulSet",
                "rabbit",
                "SuccessfulCreate",
                "2026-12-01T10:00:01Z",
            ),
        ];
        let broker: EventBroker = serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
            "metadata": {"name": "rabbit", "namespace": "demo"},
            "spec": {"managed": {}}
        }))
        .unwrap();
        let rows = recent_events(&events, &[stream()], &[broker], 10);
        let objects: Vec<&str> = rows.iter().map(|r| r.object.as_str()).collect();
        assert_eq!(
            objects,
            [
                "Pod/shop-a-web-5d8c-x1",
                "Stream/shop",
                "StatefulSet/rabbit"
            ]
        );
        assert_eq!((rows[0].type_.as_str(), rows[0].count), ("Warning", 2));
        assert_eq!(recent_events(&events, &[stream()], &[], 1).len(), 1);
    }
}
