//! The broker objects a set of [`Bindings`] needs, as plain data: the
//! operator declares the union of its apps' topologies, a standalone app
//! declares its own. Both go through [`crate::declare`], so the queue
//! arguments are identical whoever declares first.

use std::collections::BTreeMap;

use crate::bindings::{Bindings, QueueType, Redelivery};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExchangeKind {
    Topic,
    Fanout,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
}

/// `x-` arguments of a queue. They must be the same on every declaration,
/// or the broker refuses the second one (PRECONDITION_FAILED).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueArgs {
    pub queue_type: QueueType,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub message_ttl_ms: Option<u32>,
}

impl PartialOrd for QueueType {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for QueueType {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Queue {
    pub name: String,
    pub args: QueueArgs,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
}

/// A set of exchanges, queues and bindings; sorted and free of duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<Queue>,
    pub bindings: Vec<Binding>,
}

impl Topology {
    pub fn of(bindings: &Bindings) -> Self {
        let mut t = Topology::default();
        for p in &bindings.publishes {
            t.exchanges.push(Exchange {
                name: p.exchange.clone(),
                kind: ExchangeKind::Topic,
            });
        }
        for s in &bindings.subscribes {
            t.exchanges.push(Exchange {
                name: s.exchange.clone(),
                kind: ExchangeKind::Topic,
            });
            t.exchanges.push(Exchange {
                name: s.dead_letter_exchange.clone(),
                kind: ExchangeKind::Fanout,
            });
            // Rejected messages (attempts exhausted) dead-letter to the DLX.
            t.queues.push(Queue {
                name: s.queue.clone(),
                args: QueueArgs {
                    queue_type: s.queue_type,
                    dead_letter_exchange: Some(s.dead_letter_exchange.clone()),
                    ..QueueArgs::default()
                },
            });
            // A message waits out its backoff here, then expires back into
            // the group queue through the default exchange (the broker's
            // own doing). The worker sends it here through the retry
            // exchange of the same name.
            if s.redelivery == Redelivery::RetryQueue {
                t.exchanges.push(Exchange {
                    name: s.retry_queue.clone(),
                    kind: ExchangeKind::Fanout,
                });
                t.bindings.push(Binding {
                    exchange: s.retry_queue.clone(),
                    queue: s.retry_queue.clone(),
                    routing_key: String::new(),
                });
                t.queues.push(Queue {
                    name: s.retry_queue.clone(),
                    args: QueueArgs {
                        queue_type: s.queue_type,
                        dead_letter_exchange: Some(String::new()),
                        dead_letter_routing_key: Some(s.queue.clone()),
                        message_ttl_ms: Some(s.backoff_ms),
                    },
                });
            }
            t.queues.push(Queue {
                name: s.dead_letter_queue.clone(),
                args: QueueArgs {
                    queue_type: s.queue_type,
                    ..QueueArgs::default()
                },
            });
            for key in &s.routing_keys {
                t.bindings.push(Binding {
                    exchange: s.exchange.clone(),
                    queue: s.queue.clone(),
                    routing_key: key.clone(),
                });
            }
            t.bindings.push(Binding {
                exchange: s.dead_letter_exchange.clone(),
                queue: s.dead_letter_queue.clone(),
                routing_key: String::new(),
            });
        }
        t.normalize();
        t
    }

    /// Union of several topologies (the operator's view of a whole Stream).
    pub fn merge(parts: impl IntoIterator<Item = Topology>) -> Self {
        let mut t = Topology::default();
        for p in parts {
            t.exchanges.extend(p.exchanges);
            t.queues.extend(p.queues);
            t.bindings.extend(p.bindings);
        }
        t.normalize();
        t
    }

    fn normalize(&mut self) {
        self.exchanges.sort();
        self.exchanges.dedup();
        // Two declarations of one queue name must agree; keep the first.
        let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
        for q in self.queues.drain(..) {
            queues.entry(q.name.clone()).or_insert(q);
        }
        self.queues = queues.into_values().collect();
        self.bindings.sort();
        self.bindings.dedup();
    }

    /// Every queue name, for deletion and for status.
    pub fn queue_names(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().map(|q| q.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::SubscriptionRequest;

    #[test]
    fn a_subscription_yields_group_retry_and_dead_letter_objects() {
        let b = Bindings::standalone(
            "ns",
            &["orders"],
            &[SubscriptionRequest {
                destination: "orders",
                group: "w",
                routing_keys: vec!["order.*".into(), "payment.#".into()],
                max_attempts: 3,
                backoff_ms: 250,
            }],
        );
        let t = Topology::of(&b);
        let names: Vec<_> = t.exchanges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ns.orders", "ns.orders.w.dlx", "ns.orders.w.retry"]);
        assert_eq!(
            t.queue_names().collect::<Vec<_>>(),
            ["ns.orders.w", "ns.orders.w.dlq", "ns.orders.w.retry"]
        );
        let retry = &t.queues[2].args;
        assert_eq!(retry.message_ttl_ms, Some(250));
        assert_eq!(retry.dead_letter_exchange.as_deref(), Some(""));
        assert_eq!(
            retry.dead_letter_routing_key.as_deref(),
            Some("ns.orders.w")
        );
        assert_eq!(
            t.queues[0].args.dead_letter_exchange.as_deref(),
            Some("ns.orders.w.dlx")
        );
        // Two routing keys, the DLQ's and the retry queue's.
        assert_eq!(t.bindings.len(), 4);
        assert!(t.bindings.contains(&Binding {
            exchange: "ns.orders.w.retry".into(),
            queue: "ns.orders.w.retry".into(),
            routing_key: String::new(),
        }));
    }

    #[test]
    fn an_in_process_subscription_has_no_retry_queue() {
        let request = SubscriptionRequest {
            destination: "ticks",
            group: "log",
            routing_keys: vec![],
            max_attempts: 3,
            backoff_ms: 250,
        };
        let b = Bindings {
            publishes: vec![],
            subscribes: vec![
                crate::Subscription::new("ns", &request, QueueType::Classic).retried_in_process(),
            ],
        };
        let t = Topology::of(&b);
        assert_eq!(
            t.queue_names().collect::<Vec<_>>(),
            ["ns.ticks.log", "ns.ticks.log.dlq"]
        );
        let exchanges: Vec<_> = t.exchanges.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(exchanges, ["ns.ticks", "ns.ticks.log.dlx"]);
        // Rejected messages still dead-letter to the group's DLX.
        assert_eq!(
            t.queues[0].args.dead_letter_exchange.as_deref(),
            Some("ns.ticks.log.dlx")
        );
    }

    #[test]
    fn merging_deduplicates_shared_destinations() {
        let a = Topology::of(&Bindings::standalone("ns", &["orders"], &[]));
        let b = Topology::of(&Bindings::standalone("ns", &["orders"], &[]));
        assert_eq!(Topology::merge([a.clone(), b]), a);
    }
}
