//! A Stream's topology as `status.destinations` records it, both ways: the
//! status written after a declare, and the topology read back from a status
//! to delete what an earlier spec declared. The one place that knows how
//! exchange and queue names map onto destinations.

use eventflow_contract::{
    Topology,
    topology::{Exchange, ExchangeKind, Queue},
};

use crate::api::DestinationStatus;

/// Destination -> exchange and queues, for status (a destination's
/// exchange is a topic; the fanouts — dead-letter and retry exchanges — are
/// implied by their `.dlq` and `.retry` queues).
pub fn to_destinations(topology: &Topology, namespace: &str) -> Vec<DestinationStatus> {
    let prefix = format!("{namespace}.");
    topology
        .exchanges
        .iter()
        .filter(|e| e.kind == ExchangeKind::Topic)
        .map(|e| {
            let queue_prefix = format!("{}.", e.name);
            DestinationStatus {
                name: e.name.strip_prefix(&prefix).unwrap_or(&e.name).to_owned(),
                exchange: e.name.clone(),
                queues: topology
                    .queue_names()
                    .filter(|q| q.starts_with(&queue_prefix))
                    .map(str::to_owned)
                    .collect(),
            }
        })
        .collect()
}

/// The topology a Stream declared, as recorded in its status: destination
/// exchanges and queues, the dead-letter exchange of every `.dlq` and the
/// retry exchange of every `.retry` (of the queue's name).
/// Arguments are not recorded; this is only good for deleting by name.
pub fn from_destinations(destinations: &[DestinationStatus]) -> Topology {
    let mut t = Topology::default();
    for d in destinations {
        t.exchanges.push(Exchange {
            name: d.exchange.clone(),
            kind: ExchangeKind::Topic,
        });
        for q in &d.queues {
            t.queues.push(Queue {
                name: q.clone(),
                args: Default::default(),
            });
            if let Some(group) = q.strip_suffix(".dlq") {
                t.exchanges.push(Exchange {
                    name: format!("{group}.dlx"),
                    kind: ExchangeKind::Fanout,
                });
            }
            if q.ends_with(".retry") {
                t.exchanges.push(Exchange {
                    name: q.clone(),
                    kind: ExchangeKind::Fanout,
                });
            }
        }
    }
    Topology::merge([t])
}

#[cfg(test)]
mod tests {
    use eventflow_contract::{Bindings, bindings::SubscriptionRequest};

    use super::*;

    #[test]
    fn a_status_gives_back_every_queue_and_exchange_it_recorded() {
        let d = DestinationStatus {
            name: "orders".into(),
            exchange: "ns.orders".into(),
            queues: vec![
                "ns.orders.w".into(),
                "ns.orders.w.dlq".into(),
                "ns.orders.w.retry".into(),
            ],
        };
        let t = from_destinations(&[d]);
        let exchanges: Vec<_> = t.exchanges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            exchanges,
            ["ns.orders", "ns.orders.w.dlx", "ns.orders.w.retry"]
        );
        assert_eq!(t.queue_names().count(), 3);
    }

    #[test]
    fn a_topology_written_to_status_reads_back_with_the_same_names() {
        let sub = SubscriptionRequest {
            destination: "orders",
            group: "billing",
            routing_keys: vec![],
            max_attempts: 3,
            backoff_ms: 100,
        };
        let declared = Topology::of(&Bindings::standalone("ns", &["orders"], &[sub]));
        let status = to_destinations(&declared, "ns");
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].name, "orders");
        let back = from_destinations(&status);
        let names = |t: &Topology| {
            let mut n: Vec<String> = t.queue_names().map(str::to_owned).collect();
            n.extend(t.exchanges.iter().map(|e| e.name.clone()));
            n.sort();
            n
        };
        assert_eq!(names(&back), names(&declared));
    }
}
