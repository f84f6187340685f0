//! The broker permissions an app needs, derived from its [`Bindings`]:
//! RabbitMQ's three regular expressions on one vhost, matched against the
//! names of exchanges and queues (RabbitMQ's access-control table):
//!
//! | operation | checks |
//! |---|---|
//! | `exchange.declare`, `queue.declare`, `*.delete` | configure on the object |
//! | `basic.publish` | write on the exchange (`amq.default` for the default exchange) |
//! | `basic.consume`, `basic.get`, `queue.purge` | read on the queue |
//! | `queue.bind` | write on the queue, read on the exchange |
//! | passive declares, acks, rejects, dead-lettering | nothing |
//!
//! An eventflow app needs:
//! - **configure** nothing: the operator declares the topology, the app
//!   only checks it with passive declares;
//! - **write** the exchanges of the destinations it publishes to, and the
//!   retry exchange of each of its groups (never the default exchange,
//!   which would let it write into every queue of the vhost);
//! - **read** its groups' queues.
//!
//! A Spring Cloud Stream app needs the same, minus the retry exchanges (its
//! binder retries in process, [`crate::Redelivery::InProcess`]); told not
//! to declare the exchange, the binding or a DLQ, it declares nothing the
//! broker checks (the e2e Spring Streams run with configure `^$`). Every
//! pattern is anchored and lists exact names, so no other Stream's or
//! group's object matches.

use crate::{Bindings, Redelivery};

/// The pattern RabbitMQ reads as "nothing".
pub const NOTHING: &str = "^$";

/// RabbitMQ permissions of one user on one vhost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Permissions {
    /// What an app with `bindings` needs, and nothing more.
    pub fn of(bindings: &Bindings) -> Self {
        let mut write: Vec<&str> = bindings
            .publishes
            .iter()
            .map(|p| p.exchange.as_str())
            .collect();
        let mut read = Vec::new();
        for s in &bindings.subscribes {
            read.push(s.queue.as_str());
            // A Spring app's binder retries in process: no retry exchange.
            if s.redelivery == Redelivery::RetryQueue {
                write.push(&s.retry_queue);
            }
        }
        Self {
            configure: NOTHING.to_owned(),
            write: exactly(write),
            read: exactly(read),
        }
    }
}

/// A pattern matching exactly `names` (none: [`NOTHING`]).
fn exactly(mut names: Vec<&str>) -> String {
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return NOTHING.to_owned();
    }
    let alternatives: Vec<String> = names.into_iter().map(escape).collect();
    format!("^({})$", alternatives.join("|"))
}

/// `name` with every character a regular expression gives a meaning escaped.
fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Publication, QueueType, Subscription, bindings::SubscriptionRequest};

    fn request<'a>(destination: &'a str, group: &'a str) -> SubscriptionRequest<'a> {
        SubscriptionRequest {
            destination,
            group,
            routing_keys: vec![],
            max_attempts: 3,
            backoff_ms: 100,
        }
    }

    #[test]
    fn a_worker_writes_its_destinations_and_retry_exchanges_and_reads_its_groups() {
        let bindings = Bindings::standalone(
            "shop",
            &["orders"],
            &[request("payments", "order"), request("inventory", "order")],
        );
        let p = Permissions::of(&bindings);
        assert_eq!(p.configure, NOTHING);
        assert_eq!(
            p.write,
            r"^(shop\.inventory\.order\.retry|shop\.orders|shop\.payments\.order\.retry)$"
        );
        assert_eq!(p.read, r"^(shop\.inventory\.order|shop\.payments\.order)$");
    }

    #[test]
    fn a_publisher_reads_nothing_and_an_app_without_bindings_gets_nothing() {
        let p = Permissions::of(&Bindings::standalone("shop", &["orders"], &[]));
        assert_eq!((p.configure.as_str(), p.read.as_str()), (NOTHING, NOTHING));
        assert_eq!(p.write, r"^(shop\.orders)$");
        let none = Permissions::of(&Bindings::default());
        assert_eq!(
            [none.configure, none.write, none.read],
            [NOTHING, NOTHING, NOTHING]
        );
    }

    #[test]
    fn a_spring_consumer_declares_nothing_and_has_no_retry_exchange() {
        let bindings = Bindings {
            publishes: vec![Publication::new("ns", "out")],
            subscribes: vec![
                Subscription::new("ns", &request("in", "log"), QueueType::Classic)
                    .retried_in_process(),
            ],
        };
        let p = Permissions::of(&bindings);
        assert_eq!(p.configure, NOTHING);
        assert_eq!(p.write, r"^(ns\.out)$");
        assert_eq!(p.read, r"^(ns\.in\.log)$");
    }

    #[test]
    fn a_shared_destination_is_listed_once_and_metacharacters_are_escaped() {
        let bindings = Bindings::standalone("a-b", &["x", "x"], &[]);
        assert_eq!(Permissions::of(&bindings).write, r"^(a-b\.x)$");
        assert_eq!(
            escape("a+b(c)|[d]{e}^$?*\\"),
            r"a\+b\(c\)\|\[d\]\{e\}\^\$\?\*\\"
        );
    }
}
