//! The broker objects of the run (`Broker`: our topology, publishing, queue
//! depth, the cleanup) and our bindings.

use eventflow_contract::{Bindings, bindings::SubscriptionRequest};

/// The broker objects of this run, deleted at its end.
pub(crate) use crate::scratch::Scratch as Broker;

pub(crate) fn bindings(ns: &str) -> Bindings {
    Bindings::standalone(
        ns,
        &["account"],
        &[SubscriptionRequest {
            destination: "account",
            group: "account-worker",
            routing_keys: vec!["account.*".into()],
            max_attempts: 5,
            backoff_ms: 1000,
        }],
    )
}
