//! The payment bounded context on the eventflow runtime: the payment aggregate
//! ([`payment`]), its action-mapped functions ([`functions`]) and the
//! [`spec`] that hands both to the runtime for every role.

pub mod functions;
pub mod payment;

use axum::Router;
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    app::AppSpec,
    config::{OwnDestination, Standalone},
    openapi::OpenApi,
    web::{WebContext, aggregate_routes},
};

pub use payment::Payment;

pub const APP: &str = "payment";
pub const DESTINATION: &str = "payment";
pub const WORKER_GROUP: &str = "payment-worker";
/// The worker's routing keys on the `payment` destination: exactly the
/// events that trigger one of its functions (`payment.*` works too).
pub const WORKER_ROUTING_KEYS: &[&str] = &[
    "payment.ORDER_CONNECTED",
    "payment.PAYMENT_SUCCEEDED",
    "payment.PAYMENT_FAILED",
];
/// A saga step waits for another context now and then (a payment not
/// connected yet, a peer restarting): retry often and long before giving up.
pub const MAX_ATTEMPTS: u32 = 30;
pub const BACKOFF_MS: u32 = 500;

/// The worker's subscription to the context's own destination.
pub const OWN: OwnDestination = OwnDestination {
    destination: DESTINATION,
    group: WORKER_GROUP,
    routing_keys: WORKER_ROUTING_KEYS,
    max_attempts: MAX_ATTEMPTS,
    backoff_ms: BACKOFF_MS,
};

/// The worker's subscription, as the operator's Stream should declare it.
pub fn subscription() -> SubscriptionRequest<'static> {
    OWN.subscription()
}

/// The topology the app declares for itself when no operator wrote
/// `EVENTFLOW_BINDINGS`.
pub fn standalone() -> Standalone {
    OWN.standalone()
}

pub fn routes() -> Router<WebContext> {
    aggregate_routes::<Payment>()
}

pub fn openapi() -> serde_json::Value {
    OpenApi::new("eventflow payment")
        .aggregate::<Payment>()
        .build()
}

fn collection_of(_aggregate: &str) -> &'static str {
    "payments"
}

pub fn spec() -> AppSpec {
    AppSpec {
        name: APP,
        standalone: standalone(),
        publishes_to: DESTINATION,
        routes,
        openapi,
        collection_of,
        functions: functions::registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_subscribes_to_exactly_the_events_that_trigger_its_functions() {
        let mut keys = OWN.subscription().routing_keys;
        keys.sort();
        assert_eq!(keys, functions::registry().trigger_keys("payment"));
    }
}
