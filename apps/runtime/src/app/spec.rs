//! What an app tells the runtime about itself ([`AppSpec`]): its name, the
//! destination it publishes to and its worker consumes ([`Worker`]), its
//! routes, OpenAPI document and functions — built as
//! `AppSpec::new(name, destination, worker).web(..).functions(..)`.
//! Everything else — the worker's subscription, the topology it declares
//! without an operator — follows from it, so an app states only what is
//! its own.

use axum::Router;
use eventflow_contract::{bindings::SubscriptionRequest, defaults};
use serde_json::Value;

use crate::{config::Standalone, functions::Registry, web::WebContext};

/// Everything the runtime needs to know about an app.
#[derive(Clone, Copy)]
pub struct AppSpec {
    /// `account`: default store file name, connection name.
    pub name: &'static str,
    /// The destination its events are published to, which its worker
    /// consumes.
    pub destination: &'static str,
    /// The worker's consumer group on `destination`.
    pub worker: Worker,
    /// Its aggregates' routes (e.g. [`crate::web::aggregate_routes`] merged).
    pub routes: fn() -> Router<WebContext>,
    pub openapi: fn() -> Value,
    /// Aggregate type -> collection path segment, for links.
    pub collection_of: fn(&str) -> &'static str,
    pub functions: fn() -> Registry,
}

/// The worker's subscription to the app's own destination.
#[derive(Clone, Copy, Debug)]
pub struct Worker {
    pub group: &'static str,
    pub routing_keys: RoutingKeys,
    pub retry: Retry,
}

/// Which events of its destination the worker receives.
#[derive(Clone, Copy, Debug)]
pub enum RoutingKeys {
    /// Exactly the events of this aggregate type that trigger one of the
    /// app's functions ([`Registry::trigger_keys`]).
    TriggersOf(&'static str),
    /// Fixed patterns (`account.*`); events that trigger no function are
    /// acknowledged as ignored.
    Patterns(&'static [&'static str]),
}

/// How often and how soon a failed message is delivered again before it
/// is dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff_ms: u32,
}

impl Retry {
    /// The operator's defaults for a subscription that sets neither.
    pub const DEFAULT: Self = Self {
        max_attempts: defaults::MAX_ATTEMPTS,
        backoff_ms: defaults::BACKOFF_MS,
    };

    /// A saga step waits for another context now and then (a payment not
    /// connected yet, an order not reserving yet, a peer restarting): retry
    /// often and long before giving up.
    pub const SAGA_STEP: Self = Self {
        max_attempts: 30,
        backoff_ms: 500,
    };
}

impl Worker {
    /// A worker that receives exactly the `<kind>.<EVENT>` keys that
    /// trigger one of the app's functions.
    pub const fn triggered_by(group: &'static str, kind: &'static str, retry: Retry) -> Self {
        Self {
            group,
            routing_keys: RoutingKeys::TriggersOf(kind),
            retry,
        }
    }

    /// A worker bound to fixed routing-key patterns (`account.*`).
    pub const fn patterns(
        group: &'static str,
        patterns: &'static [&'static str],
        retry: Retry,
    ) -> Self {
        Self {
            group,
            routing_keys: RoutingKeys::Patterns(patterns),
            retry,
        }
    }
}

impl AppSpec {
    /// An app named `name` that publishes to `destination`, whose worker
    /// consumes it as `worker` says; without aggregates or functions until
    /// [`Self::web`] and [`Self::functions`] add them.
    pub const fn new(name: &'static str, destination: &'static str, worker: Worker) -> Self {
        Self {
            name,
            destination,
            worker,
            routes: Router::new,
            openapi: || Value::Null,
            collection_of: |_| "",
            functions: Registry::default,
        }
    }

    /// Its web role: the aggregates' routes, the OpenAPI document, and the
    /// collection of each aggregate type (for links).
    pub const fn web(
        self,
        routes: fn() -> Router<WebContext>,
        openapi: fn() -> Value,
        collection_of: fn(&str) -> &'static str,
    ) -> Self {
        Self {
            routes,
            openapi,
            collection_of,
            ..self
        }
    }

    /// Its action-mapped functions (the worker's, and the `functions` role's).
    pub const fn functions(self, functions: fn() -> Registry) -> Self {
        Self { functions, ..self }
    }

    /// The worker's subscription, as the operator's Stream should declare it.
    pub fn subscription(&self) -> SubscriptionRequest<'static> {
        let routing_keys = match self.worker.routing_keys {
            RoutingKeys::TriggersOf(aggregate) => (self.functions)().trigger_keys(aggregate),
            RoutingKeys::Patterns(patterns) => patterns.iter().map(|p| (*p).to_owned()).collect(),
        };
        SubscriptionRequest {
            destination: self.destination,
            group: self.worker.group,
            routing_keys,
            max_attempts: self.worker.retry.max_attempts,
            backoff_ms: self.worker.retry.backoff_ms,
        }
    }

    /// The worker's routing keys as a Stream's subscription states them in
    /// YAML flow style, `eventTypes: ["order.A", "order.B"]` (what the
    /// example Stream carries; each app's tests check it there).
    pub fn event_types_line(&self) -> String {
        let keys: Vec<String> = self
            .subscription()
            .routing_keys
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect();
        format!("eventTypes: [{}]", keys.join(", "))
    }

    /// Publishes to its destination, the worker subscribes to it: the
    /// topology the app declares when no operator wrote `EVENTFLOW_BINDINGS`.
    pub fn standalone(&self) -> Standalone {
        Standalone {
            publishes: vec![self.destination],
            subscribes: vec![self.subscription()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cloudevent::CloudEvent,
        consumer::HandlerError,
        functions::{Function, Outcome},
    };

    async fn nothing(_: CloudEvent) -> Result<Outcome, HandlerError> {
        Ok(Outcome::default())
    }

    fn registry() -> Registry {
        Registry {
            functions: vec![
                Function::new("first", &["B_HAPPENED", "A_HAPPENED"], nothing),
                Function::new("second", &["A_HAPPENED", "C_HAPPENED"], nothing),
            ],
        }
    }

    const RETRY: Retry = Retry {
        max_attempts: 7,
        backoff_ms: 250,
    };

    fn spec(worker: Worker) -> AppSpec {
        AppSpec::new("thing", "things", worker).functions(registry)
    }

    #[test]
    fn a_worker_triggered_by_its_functions_subscribes_to_exactly_their_events() {
        let s = spec(Worker::triggered_by("thing-worker", "thing", RETRY)).subscription();
        assert_eq!(s.routing_keys, registry().trigger_keys("thing"));
        assert_eq!(
            s.routing_keys,
            ["thing.A_HAPPENED", "thing.B_HAPPENED", "thing.C_HAPPENED"]
        );
        assert_eq!((s.destination, s.group), ("things", "thing-worker"));
        assert_eq!((s.max_attempts, s.backoff_ms), (7, 250));
    }

    #[test]
    fn standalone_the_app_publishes_to_and_consumes_its_own_destination() {
        let standalone = spec(Worker::patterns("thing-worker", &["thing.*"], RETRY)).standalone();
        assert_eq!(standalone.publishes, ["things"]);
        assert_eq!(standalone.subscribes.len(), 1);
        assert_eq!(standalone.subscribes[0].routing_keys, ["thing.*"]);
    }
}
