//! The `EVENTFLOW_BINDINGS` document: what an app publishes to and consumes
//! from, with every broker name already resolved. The operator writes it
//! into each app container's environment (so a topology change rolls the
//! pods); an app run by hand builds it with [`Bindings::standalone`].

use serde::{Deserialize, Serialize};

use crate::names;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bindings {
    /// Destinations the app publishes its events to.
    #[serde(default)]
    pub publishes: Vec<Publication>,
    /// Group queues the app consumes.
    #[serde(default)]
    pub subscribes: Vec<Subscription>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Publication {
    pub destination: String,
    /// Topic exchange of the destination.
    pub exchange: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Single-node brokers.
    #[default]
    Classic,
    /// Three-node brokers: replicated, survives the loss of a node.
    Quorum,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub destination: String,
    /// Consumer group: every group gets its own copy of each event; the
    /// replicas of one group share the work.
    pub group: String,
    pub exchange: String,
    pub queue: String,
    pub retry_queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    /// Routing-key patterns (`#`, `*` wildcards) bound to the queue.
    pub routing_keys: Vec<String>,
    pub max_attempts: u32,
    pub backoff_ms: u32,
    #[serde(default)]
    pub queue_type: QueueType,
    /// How a failed message is delivered again (absent in the JSON for the
    /// default, so the document of an eventflow app is unchanged).
    #[serde(default, skip_serializing_if = "Redelivery::is_retry_queue")]
    pub redelivery: Redelivery,
}

/// Who waits out a subscription's backoff between attempts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Redelivery {
    /// eventflow apps: a failed message waits in the group's retry queue
    /// (TTL = backoff) and expires back into the group queue.
    #[default]
    RetryQueue,
    /// Spring Cloud Stream apps: the binder retries in process
    /// (`maxAttempts`, `backOff*`), then rejects the message, which the
    /// group queue dead-letters; no retry queue exists.
    InProcess,
}

impl Redelivery {
    pub fn is_retry_queue(&self) -> bool {
        *self == Redelivery::RetryQueue
    }
}

/// What a subscription asks for, before names are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionRequest<'a> {
    pub destination: &'a str,
    pub group: &'a str,
    pub routing_keys: Vec<String>,
    pub max_attempts: u32,
    pub backoff_ms: u32,
}

impl Publication {
    pub fn new(namespace: &str, destination: &str) -> Self {
        Self {
            destination: destination.to_owned(),
            exchange: names::exchange(namespace, destination),
        }
    }
}

impl Subscription {
    pub fn new(namespace: &str, request: &SubscriptionRequest<'_>, queue_type: QueueType) -> Self {
        let (d, g) = (request.destination, request.group);
        let routing_keys = if request.routing_keys.is_empty() {
            vec!["#".to_owned()]
        } else {
            request.routing_keys.clone()
        };
        Self {
            destination: d.to_owned(),
            group: g.to_owned(),
            exchange: names::exchange(namespace, d),
            queue: names::queue(namespace, d, g),
            retry_queue: names::retry_queue(namespace, d, g),
            dead_letter_exchange: names::dead_letter_exchange(namespace, d, g),
            dead_letter_queue: names::dead_letter_queue(namespace, d, g),
            routing_keys,
            max_attempts: request.max_attempts.max(1),
            backoff_ms: request.backoff_ms,
            queue_type,
            redelivery: Redelivery::RetryQueue,
        }
    }

    /// The same subscription, retried in process by its consumer (Spring
    /// Cloud Stream's binder) instead of through a retry queue.
    pub fn retried_in_process(mut self) -> Self {
        self.redelivery = Redelivery::InProcess;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindingsError {
    #[error("{var} is not valid JSON for the bindings document: {source}")]
    Json {
        var: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Bindings {
    /// Bindings for an app run by hand (no operator): names under `namespace`
    /// (e.g. `local`), classic queues.
    pub fn standalone(
        namespace: &str,
        publishes: &[&str],
        subscribes: &[SubscriptionRequest<'_>],
    ) -> Self {
        Self {
            publishes: publishes
                .iter()
                .map(|d| Publication::new(namespace, d))
                .collect(),
            subscribes: subscribes
                .iter()
                .map(|s| Subscription::new(namespace, s, QueueType::Classic))
                .collect(),
        }
    }

    pub fn from_json(json: &str) -> Result<Self, BindingsError> {
        serde_json::from_str(json).map_err(|source| BindingsError::Json {
            var: crate::env::BINDINGS,
            source,
        })
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The exchange of a destination this app publishes to.
    pub fn exchange_for(&self, destination: &str) -> Option<&str> {
        self.publishes
            .iter()
            .find(|p| p.destination == destination)
            .map(|p| p.exchange.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account_worker() -> SubscriptionRequest<'static> {
        SubscriptionRequest {
            destination: "account",
            group: "account-worker",
            routing_keys: vec!["account.*".into()],
            max_attempts: 3,
            backoff_ms: 500,
        }
    }

    #[test]
    fn bindings_round_trip_through_the_documented_json_shape() {
        let b = Bindings::standalone("local", &["account"], &[account_worker()]);
        let json: serde_json::Value = serde_json::from_str(&b.to_json()).unwrap();
        assert_eq!(json["publishes"][0]["exchange"], "local.account");
        let s = &json["subscribes"][0];
        assert_eq!(s["queue"], "local.account.account-worker");
        assert_eq!(s["retryQueue"], "local.account.account-worker.retry");
        assert_eq!(s["deadLetterQueue"], "local.account.account-worker.dlq");
        assert_eq!(s["routingKeys"][0], "account.*");
        assert_eq!(s["maxAttempts"], 3);
        assert_eq!(s["queueType"], "classic");
        assert_eq!(Bindings::from_json(&b.to_json()).unwrap(), b);
    }

    #[test]
    fn a_subscription_without_patterns_receives_every_event() {
        let mut req = account_worker();
        req.routing_keys.clear();
        let s = Subscription::new("ns", &req, QueueType::Quorum);
        assert_eq!(s.routing_keys, vec!["#"]);
        assert_eq!(s.queue_type, QueueType::Quorum);
    }

    #[test]
    fn in_process_redelivery_is_written_and_the_default_is_not() {
        let s = Subscription::new("ns", &account_worker(), QueueType::Classic);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json.get("redelivery").is_none(), "{json}");
        let json = serde_json::to_value(s.clone().retried_in_process()).unwrap();
        assert_eq!(json["redelivery"], "inProcess");
        let back: Subscription = serde_json::from_value(json).unwrap();
        assert_eq!(back.redelivery, Redelivery::InProcess);
    }

    #[test]
    fn malformed_bindings_name_the_variable() {
        let err = Bindings::from_json("{not json").unwrap_err().to_string();
        assert!(err.contains("EVENTFLOW_BINDINGS"), "{err}");
    }
}
