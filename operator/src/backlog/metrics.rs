//! Per consumer group gauges (labels namespace, stream, destination,
//! group): messages ready, unacknowledged, consumers, dead letters. A
//! figure the broker does not give has no series (never a 0); a Stream's
//! series go with it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::api::GroupStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    namespace: String,
    stream: String,
    destination: String,
    group: String,
}

/// A Stream: namespace and name.
type StreamKey = (String, String);

#[derive(Clone, Default)]
pub struct GroupGauges {
    ready: Family<GroupLabels, Gauge>,
    unacknowledged: Family<GroupLabels, Gauge>,
    consumers: Family<GroupLabels, Gauge>,
    dead_letters: Family<GroupLabels, Gauge>,
    /// The label sets of each Stream (namespace, name), to remove them.
    series: Arc<Mutex<HashMap<StreamKey, Vec<GroupLabels>>>>,
}

impl GroupGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        for (name, help, family) in [
            (
                "group_messages_ready",
                "Messages ready in a consumer group's queue",
                &g.ready,
            ),
            (
                "group_messages_unacknowledged",
                "Messages delivered and not acknowledged yet in a consumer group's queue (management API only)",
                &g.unacknowledged,
            ),
            (
                "group_consumers",
                "Consumers on a consumer group's queue",
                &g.consumers,
            ),
            (
                "group_dead_letters",
                "Messages in a consumer group's dead-letter queue",
                &g.dead_letters,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        g
    }

    fn families(&self) -> [&Family<GroupLabels, Gauge>; 4] {
        [
            &self.ready,
            &self.unacknowledged,
            &self.consumers,
            &self.dead_letters,
        ]
    }

    /// The figures of every group of Stream `namespace/stream`, replacing
    /// its earlier series.
    pub fn set(&self, namespace: &str, stream: &str, groups: &[GroupStatus]) {
        self.forget(namespace, stream);
        let mut labels = Vec::with_capacity(groups.len());
        for g in groups {
            let l = GroupLabels {
                namespace: namespace.to_owned(),
                stream: stream.to_owned(),
                destination: g.destination.clone(),
                group: g.group.clone(),
            };
            let values = [g.ready, g.unacknowledged, g.consumers, g.dead_letters];
            for (family, value) in self.families().into_iter().zip(values) {
                if let Some(v) = value {
                    family.get_or_create(&l).set(v);
                }
            }
            labels.push(l);
        }
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.insert((namespace.to_owned(), stream.to_owned()), labels);
    }

    /// Removes every series of Stream `namespace/stream` (deleted).
    pub fn forget(&self, namespace: &str, stream: &str) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for l in series
            .remove(&(namespace.to_owned(), stream.to_owned()))
            .unwrap_or_default()
        {
            for family in self.families() {
                family.remove(&l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{api::GroupStatus, metrics::Metrics};

    fn group(group: &str, unacked: Option<i64>) -> GroupStatus {
        GroupStatus {
            destination: "orders".into(),
            group: group.into(),
            ready: Some(4),
            unacknowledged: unacked,
            consumers: Some(0),
            dead_letters: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn group_gauges_show_known_figures_only_and_go_with_their_stream() {
        let m = Metrics::new();
        m.groups.set(
            "shop",
            "s",
            &[group("billing", None), group("audit", Some(1))],
        );
        m.groups.set("shop", "other", &[group("x", Some(0))]);
        let text = m.render();
        let labels = r#"{namespace="shop",stream="s",destination="orders",group="billing"}"#;
        assert!(
            text.contains(&format!(
                "eventflow_operator_group_messages_ready{labels} 4"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("eventflow_operator_group_dead_letters{labels} 2")),
            "{text}"
        );
        assert!(
            text.contains(&format!("eventflow_operator_group_consumers{labels} 0")),
            "{text}"
        );
        // Unknown (AMQP only): no series rather than a 0.
        assert!(
            !text.contains(&format!(
                "eventflow_operator_group_messages_unacknowledged{labels}"
            )),
            "{text}"
        );
        assert!(text.contains(r#"group_messages_unacknowledged{namespace="shop",stream="s",destination="orders",group="audit"} 1"#), "{text}");
        // A group that left the spec loses its series; a deleted Stream all of them.
        m.groups.set("shop", "s", &[group("audit", Some(1))]);
        assert!(!m.render().contains(r#"group="billing""#));
        m.groups.forget("shop", "s");
        let text = m.render();
        assert!(!text.contains(r#"stream="s""#), "{text}");
        assert!(text.contains(r#"stream="other""#), "{text}");
    }
}
