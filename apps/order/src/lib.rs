//! The order bounded context on the eventflow runtime: the order aggregate
//! ([`order`]), the saga's action-mapped functions ([`functions`]) and the
//! [`spec`] that hands both to the runtime for every role.

pub mod functions;
pub mod order;
mod schemas;

use axum::Router;
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    app::AppSpec,
    config::Standalone,
    openapi::OpenApi,
    web::{WebContext, aggregate_routes},
};

pub use order::Order;

pub const APP: &str = "order";
pub const DESTINATION: &str = "order";
pub const WORKER_GROUP: &str = "order-worker";
/// The worker's routing-key patterns on the `order` destination.
pub const WORKER_ROUTING_KEYS: &[&str] = &["order.*"];
/// A saga step waits for another context now and then (a payment not
/// connected yet, a peer restarting): retry often and long before giving up.
pub const MAX_ATTEMPTS: u32 = 30;
pub const BACKOFF_MS: u32 = 500;

/// The worker's subscription, as the operator's Stream should declare it.
pub fn subscription() -> SubscriptionRequest<'static> {
    SubscriptionRequest {
        destination: DESTINATION,
        group: WORKER_GROUP,
        routing_keys: WORKER_ROUTING_KEYS
            .iter()
            .map(|k| (*k).to_owned())
            .collect(),
        max_attempts: MAX_ATTEMPTS,
        backoff_ms: BACKOFF_MS,
    }
}

/// The topology the app declares for itself when no operator wrote
/// `EVENTFLOW_BINDINGS`.
pub fn standalone() -> Standalone {
    Standalone {
        publishes: vec![DESTINATION],
        subscribes: vec![subscription()],
    }
}

pub fn routes() -> Router<WebContext> {
    aggregate_routes::<Order>()
}

pub fn openapi() -> serde_json::Value {
    OpenApi::new("eventflow order").aggregate::<Order>().build()
}

fn collection_of(_aggregate: &str) -> &'static str {
    "orders"
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
