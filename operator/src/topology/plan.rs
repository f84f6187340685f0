//! Which broker objects a Stream may delete: what it declared minus what
//! the namespace's other live Streams on the same broker still declare.
//! Names are per destination (`<ns>.<destination>[.<group>…]`, destination
//! names are DNS labels without dots), so only Streams that use one of the
//! same destinations can share an object: the others are never built.

use std::collections::BTreeSet;

use eventflow_contract::{QueueType, Topology};
use kube::ResourceExt;

use crate::{api::Stream, build::stream::stream_topology};

/// What deleting `mine` may remove: every queue and exchange no topology in
/// `others` (the namespace's other Streams on the same broker) still has.
pub fn unshared(mine: &Topology, others: &Topology) -> Topology {
    let queues = mine
        .queues
        .iter()
        .filter(|q| !others.queues.iter().any(|o| o.name == q.name))
        .cloned()
        .collect();
    let exchanges = mine
        .exchanges
        .iter()
        .filter(|e| !others.exchanges.iter().any(|o| o.name == e.name))
        .cloned()
        .collect();
    Topology {
        exchanges,
        queues,
        bindings: Vec::new(),
    }
}

/// The destinations a Stream's apps publish to or subscribe to.
fn destinations(stream: &Stream) -> BTreeSet<&str> {
    stream
        .spec
        .apps
        .iter()
        .flat_map(|a| {
            a.publishes
                .iter()
                .map(String::as_str)
                .chain(a.subscribes.iter().map(|s| s.destination.as_str()))
        })
        .collect()
}

/// What the other live Streams of `candidates` (the namespace's Streams)
/// on `stream`'s broker declare on a destination `stream` uses.
pub fn declared_by_others<'a>(
    stream: &Stream,
    namespace: &str,
    candidates: impl IntoIterator<Item = &'a Stream>,
) -> Topology {
    let name = stream.name_any();
    let mine = destinations(stream);
    Topology::merge(
        candidates
            .into_iter()
            .filter(|o| {
                o.metadata.name.as_deref() != Some(name.as_str())
                    && o.metadata.deletion_timestamp.is_none()
                    && o.spec.broker == stream.spec.broker
                    && destinations(o).iter().any(|d| mine.contains(d))
            })
            .map(|o| stream_topology(o, namespace, QueueType::Classic)),
    )
}

#[cfg(test)]
mod tests {
    use eventflow_contract::{Bindings, bindings::SubscriptionRequest};
    use serde_json::json;

    use super::*;

    #[test]
    fn deleting_a_stream_keeps_a_destination_another_stream_still_uses() {
        let sub = |group| SubscriptionRequest {
            destination: "orders",
            group,
            routing_keys: vec![],
            max_attempts: 3,
            backoff_ms: 100,
        };
        let mine = Topology::of(&Bindings::standalone("ns", &["orders"], &[sub("billing")]));
        let other = Topology::of(&Bindings::standalone("ns", &[], &[sub("shipping")]));
        let left = unshared(&mine, &other);
        let exchanges: Vec<_> = left.exchanges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            exchanges,
            ["ns.orders.billing.dlx", "ns.orders.billing.retry"],
            "the shared destination exchange stays"
        );
        assert_eq!(
            left.queue_names().collect::<Vec<_>>(),
            [
                "ns.orders.billing",
                "ns.orders.billing.dlq",
                "ns.orders.billing.retry"
            ]
        );
    }

    fn stream(name: &str, broker: &str, destination: &str, group: &str) -> Stream {
        serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"broker": broker, "apps": [{"name": group, "image": "i", "worker": {},
                     "subscribes": [{"destination": destination}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn only_live_streams_on_the_same_broker_and_destination_count_as_sharing() {
        let me = stream("me", "rabbit", "orders", "billing");
        let tap = stream("tap", "rabbit", "orders", "audit");
        let elsewhere = stream("elsewhere", "rabbit", "payments", "audit");
        let other_broker = stream("other", "second", "orders", "audit2");
        let mut leaving = stream("leaving", "rabbit", "orders", "audit3");
        leaving.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        let all = [me.clone(), tap, elsewhere, other_broker, leaving];
        let others = declared_by_others(&me, "ns", &all);
        let mut queues: Vec<_> = others.queue_names().collect();
        queues.sort();
        assert_eq!(
            queues,
            [
                "ns.orders.audit",
                "ns.orders.audit.dlq",
                "ns.orders.audit.retry"
            ],
            "only the tap on the same destination and broker shares"
        );
    }
}
