//! Pure: the consumer groups of a Stream, the broker's figures folded into
//! `status.groups`, the totals, and which dead-letter queues started filling.

use std::collections::BTreeMap;

use eventflow_contract::QueueType;

use crate::{
    api::{App, GroupStatus, StreamStatus},
    build::wiring::app_bindings,
};

/// What the broker said about one queue. `None` is unknown: the broker
/// does not give it (AMQP has no unacknowledged count and no rates), or
/// the queue does not exist (yet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueFigures {
    pub ready: Option<i64>,
    pub unacknowledged: Option<i64>,
    pub consumers: Option<i64>,
    pub publish_rate: Option<f64>,
    pub deliver_rate: Option<f64>,
}

impl QueueFigures {
    /// Messages held: ready plus unacknowledged when known, else ready.
    pub fn messages(&self) -> Option<i64> {
        self.ready.map(|r| r + self.unacknowledged.unwrap_or(0))
    }
}

/// Every consumer group of the apps (Spring apps included), one entry per
/// group queue (the first app subscribing names it), figures unknown.
pub fn groups(namespace: &str, apps: &[App]) -> Vec<GroupStatus> {
    let mut by_queue: BTreeMap<String, GroupStatus> = BTreeMap::new();
    for app in apps {
        // Queue names do not depend on the queue type.
        for s in app_bindings(namespace, app, QueueType::Classic).subscribes {
            by_queue.entry(s.queue.clone()).or_insert(GroupStatus {
                destination: s.destination,
                group: s.group,
                app: app.name.clone(),
                queue: s.queue,
                dead_letter_queue: s.dead_letter_queue,
                ..Default::default()
            });
        }
    }
    by_queue.into_values().collect()
}

/// The queues whose figures fill `groups`: each group queue and its DLQ.
pub fn queues(groups: &[GroupStatus]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| [g.queue.clone(), g.dead_letter_queue.clone()])
        .collect()
}

/// `groups` with the figures read (by queue name).
pub fn fill(
    mut groups: Vec<GroupStatus>,
    read: &BTreeMap<String, QueueFigures>,
) -> Vec<GroupStatus> {
    for g in &mut groups {
        let q = read.get(&g.queue).cloned().unwrap_or_default();
        g.ready = q.ready;
        g.unacknowledged = q.unacknowledged;
        g.consumers = q.consumers;
        g.publish_rate = q.publish_rate;
        g.deliver_rate = q.deliver_rate;
        g.dead_letters = read
            .get(&g.dead_letter_queue)
            .and_then(QueueFigures::messages);
    }
    groups
}

/// `groups` with the figures `previous` last recorded for the same queues
/// (when this read failed: last known figures, not zeros).
pub fn keep(mut groups: Vec<GroupStatus>, previous: Option<&StreamStatus>) -> Vec<GroupStatus> {
    let old = previous.map(|p| p.groups.as_slice()).unwrap_or_default();
    for g in &mut groups {
        if let Some(o) = old.iter().find(|o| o.queue == g.queue) {
            let names = (g.destination.clone(), g.group.clone(), g.app.clone());
            *g = GroupStatus {
                destination: names.0,
                group: names.1,
                app: names.2,
                ..o.clone()
            };
        }
    }
    groups
}

/// Sum of what is known; `None` when nothing is.
fn total(values: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    values.fold(None, |sum, v| match v {
        Some(v) => Some(sum.unwrap_or(0) + v),
        None => sum,
    })
}

/// `status.backlog`: ready + unacknowledged of every group queue (ready
/// only where unacknowledged is unknown).
pub fn backlog(groups: &[GroupStatus]) -> Option<i64> {
    total(
        groups
            .iter()
            .map(|g| g.ready.map(|r| r + g.unacknowledged.unwrap_or(0))),
    )
}

/// `status.deadLetters`: messages of every group's dead-letter queue.
pub fn dead_letters(groups: &[GroupStatus]) -> Option<i64> {
    total(groups.iter().map(|g| g.dead_letters))
}

/// Groups whose dead-letter queue held nothing (or an unknown number)
/// before and holds messages now.
pub fn started_filling<'a>(
    previous: Option<&StreamStatus>,
    now: &'a [GroupStatus],
) -> Vec<&'a GroupStatus> {
    let old = previous.map(|p| p.groups.as_slice()).unwrap_or_default();
    now.iter()
        .filter(|g| g.dead_letters.unwrap_or(0) > 0)
        .filter(|g| {
            old.iter()
                .find(|o| o.dead_letter_queue == g.dead_letter_queue)
                .and_then(|o| o.dead_letters)
                .unwrap_or(0)
                == 0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apps() -> Vec<App> {
        serde_json::from_value(json!([
            {"name": "order", "image": "o", "worker": {},
             "subscribes": [{"destination": "orders"}, {"destination": "payments", "group": "order-pay"}]},
            {"name": "audit", "image": "a", "worker": {},
             "subscribes": [{"destination": "orders", "group": "audit"}]},
            {"name": "log", "image": "l", "spring": {}, "worker": {},
             "subscribes": [{"destination": "orders"}]}
        ]))
        .unwrap()
    }

    fn figures(ready: i64, unacked: Option<i64>) -> QueueFigures {
        QueueFigures {
            ready: Some(ready),
            unacknowledged: unacked,
            consumers: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn every_subscription_of_every_app_is_a_group_with_its_queue_and_dead_letter_queue() {
        let g = groups("shop", &apps());
        let names: Vec<_> = g
            .iter()
            .map(|g| {
                (
                    g.app.as_str(),
                    g.queue.as_str(),
                    g.dead_letter_queue.as_str(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("audit", "shop.orders.audit", "shop.orders.audit.dlq"),
                ("log", "shop.orders.log", "shop.orders.log.dlq"),
                ("order", "shop.orders.order", "shop.orders.order.dlq"),
                (
                    "order",
                    "shop.payments.order-pay",
                    "shop.payments.order-pay.dlq"
                ),
            ]
        );
        assert_eq!(queues(&g).len(), 8);
    }

    #[test]
    fn totals_add_what_is_known_and_stay_unknown_when_nothing_is() {
        let mut read = BTreeMap::new();
        read.insert("shop.orders.audit".to_owned(), figures(3, Some(2)));
        read.insert("shop.orders.audit.dlq".to_owned(), figures(4, Some(1)));
        read.insert("shop.orders.order".to_owned(), figures(7, None));
        read.insert("shop.orders.order.dlq".to_owned(), figures(0, None));
        let g = fill(groups("shop", &apps()), &read);
        let audit = &g[0];
        assert_eq!(
            (audit.ready, audit.unacknowledged, audit.dead_letters),
            (Some(3), Some(2), Some(5))
        );
        // AMQP only: unacknowledged stays unknown, never 0.
        assert_eq!(g[2].unacknowledged, None);
        // A queue not read (missing): all unknown.
        assert_eq!((g[3].ready, g[3].dead_letters), (None, None));
        assert_eq!(backlog(&g), Some(3 + 2 + 7));
        assert_eq!(dead_letters(&g), Some(5));
        let unknown = groups("shop", &apps());
        assert_eq!((backlog(&unknown), dead_letters(&unknown)), (None, None));
    }

    #[test]
    fn a_failed_read_keeps_the_last_known_figures_of_the_same_queues() {
        let mut read = BTreeMap::new();
        read.insert("shop.orders.audit".to_owned(), figures(3, Some(2)));
        let before = StreamStatus {
            groups: fill(groups("shop", &apps()), &read),
            ..Default::default()
        };
        let kept = keep(groups("shop", &apps()), Some(&before));
        assert_eq!(kept, before.groups);
        assert_eq!(kept[0].ready, Some(3));
    }

    #[test]
    fn a_dead_letter_queue_starts_filling_once_from_zero_or_unknown() {
        let mut read = BTreeMap::new();
        read.insert("shop.orders.audit.dlq".to_owned(), figures(2, Some(0)));
        let now = fill(groups("shop", &apps()), &read);
        let first: Vec<_> = started_filling(None, &now)
            .iter()
            .map(|g| g.group.clone())
            .collect();
        assert_eq!(first, ["audit"]);
        let before = StreamStatus {
            groups: now.clone(),
            ..Default::default()
        };
        read.insert("shop.orders.audit.dlq".to_owned(), figures(9, Some(0)));
        let later = fill(groups("shop", &apps()), &read);
        assert!(started_filling(Some(&before), &later).is_empty());
        let zero = fill(groups("shop", &apps()), &BTreeMap::new());
        assert!(started_filling(Some(&before), &zero).is_empty());
    }
}
