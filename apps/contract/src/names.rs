//! Deterministic names of broker objects.
//!
//! Destinations are shared by every Stream of a namespace (that is how one
//! Stream taps another's events), so names are namespaced by the Kubernetes
//! namespace, not by the Stream:
//!
//! | object | name |
//! |---|---|
//! | destination exchange (topic) | `<ns>.<destination>` |
//! | group queue | `<ns>.<destination>.<group>` |
//! | retry queue (TTL, dead-letters back to the group queue) | `<ns>.<destination>.<group>.retry` |
//! | retry exchange (fanout, into the retry queue) | `<ns>.<destination>.<group>.retry` |
//! | dead-letter exchange (fanout) | `<ns>.<destination>.<group>.dlx` |
//! | dead-letter queue | `<ns>.<destination>.<group>.dlq` |
//!
//! A worker sends a failed message to its retry queue through the retry
//! exchange of the same name, not through the default exchange: a broker
//! user that may write to the default exchange may write into every queue
//! of the vhost ([`crate::permissions`]).

pub fn exchange(namespace: &str, destination: &str) -> String {
    format!("{namespace}.{destination}")
}

pub fn queue(namespace: &str, destination: &str, group: &str) -> String {
    format!("{namespace}.{destination}.{group}")
}

pub fn retry_queue(namespace: &str, destination: &str, group: &str) -> String {
    format!("{}.retry", queue(namespace, destination, group))
}

pub fn dead_letter_exchange(namespace: &str, destination: &str, group: &str) -> String {
    format!("{}.dlx", queue(namespace, destination, group))
}

pub fn dead_letter_queue(namespace: &str, destination: &str, group: &str) -> String {
    format!("{}.dlq", queue(namespace, destination, group))
}

/// Routing key of an event: `<aggregate>.<EVENT>`, e.g. `account.ACCOUNT_CREATED`.
pub fn routing_key(aggregate: &str, event_type: &str) -> String {
    format!("{aggregate}.{event_type}")
}

/// CloudEvents `type` of an event: `dev.eventflow.<aggregate>.<EVENT>`.
pub fn cloudevent_type(aggregate: &str, event_type: &str) -> String {
    format!("dev.eventflow.{aggregate}.{event_type}")
}

/// Header carrying how many times a message has been attempted (1 on the
/// first retry). Consumers increment it when they route a message through
/// the retry queue and dead-letter it once it reaches `maxAttempts`.
pub const ATTEMPT_HEADER: &str = "x-eventflow-attempt";

/// Header carrying the routing key a message was first published with.
/// A worker writes it when it first sends a message to the retry queue (the
/// message comes back with the group queue's name as its routing key); a
/// redrive writes it on every message it puts back.
pub const ROUTING_KEY_HEADER: &str = "x-eventflow-routing-key";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_derived_from_the_group_queue() {
        assert_eq!(exchange("demo", "orders"), "demo.orders");
        assert_eq!(
            queue("demo", "orders", "order-worker"),
            "demo.orders.order-worker"
        );
        assert_eq!(retry_queue("demo", "orders", "w"), "demo.orders.w.retry");
        assert_eq!(
            dead_letter_exchange("demo", "orders", "w"),
            "demo.orders.w.dlx"
        );
        assert_eq!(
            dead_letter_queue("demo", "orders", "w"),
            "demo.orders.w.dlq"
        );
        assert_eq!(
            routing_key("account", "ACCOUNT_CREATED"),
            "account.ACCOUNT_CREATED"
        );
        assert_eq!(
            cloudevent_type("account", "ACCOUNT_CREATED"),
            "dev.eventflow.account.ACCOUNT_CREATED"
        );
    }
}
