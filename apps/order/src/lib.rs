//! The order bounded context on the eventflow runtime: the order aggregate
//! ([`order`]), the saga's action-mapped functions ([`functions`]) and the
//! [`spec`] that hands both to the runtime for every role.

pub mod events;
pub mod functions;
pub mod order;
mod schemas;
pub mod search;

use axum::Router;
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    app::AppSpec,
    config::{OwnDestination, Standalone},
    openapi::OpenApi,
    web::{WebContext, aggregate_routes},
};

pub use order::Order;

pub const APP: &str = "order";
pub const DESTINATION: &str = "order";
pub const WORKER_GROUP: &str = "order-worker";
/// The worker's routing keys on the `order` destination: exactly the events
/// that trigger one of its functions (`order.*` works too, acking the rest).
pub const WORKER_ROUTING_KEYS: &[&str] = &[
    "order.ORDER_CREATED",
    "order.ACCOUNT_CONNECTED",
    "order.RESERVATION_PENDING",
    "order.RESERVATION_ADDED",
    "order.RESERVATION_SUCCEEDED",
    "order.RESERVATION_FAILED",
    "order.PAYMENT_CREATED",
    "order.PAYMENT_CONNECTED",
    "order.PAYMENT_SUCCEEDED",
    "order.PAYMENT_FAILED",
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
    aggregate_routes::<Order>().merge(search::routes())
}

pub fn openapi() -> serde_json::Value {
    let mut doc = OpenApi::new("eventflow order").aggregate::<Order>().build();
    doc["paths"]["/v1/orders/search/findByAccount"] = serde_json::json!({
        "get": { "operationId": "findOrdersByAccount", "summary": "The orders of one account, oldest first (at most 500).",
                 "parameters": [{ "name": "accountId", "in": "query", "required": true, "schema": { "type": "string", "minLength": 1, "maxLength": 200 } }],
                 "responses": {
                     "200": { "description": "HAL collection", "content": { "application/hal+json": { "schema": { "type": "object" } } } },
                     "400": { "description": "Problem", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } } } }
    });
    doc
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_subscribes_to_exactly_the_events_that_trigger_its_functions() {
        let mut keys = OWN.subscription().routing_keys;
        keys.sort();
        assert_eq!(keys, functions::registry().trigger_keys("order"));
    }
}
