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
    Aggregate,
    app::{AppSpec, Retry, Worker},
    openapi::OpenApi,
    web::{WebContext, aggregate_routes},
};

pub use order::Order;

pub const APP: &str = "order";

/// The order context: its worker runs the saga's functions on the events of
/// its own destination that trigger one, retrying like every saga step.
pub fn spec() -> AppSpec {
    let worker = Worker::triggered_by("order-worker", Order::KIND, Retry::SAGA_STEP);
    AppSpec::new(APP, "order", worker)
        .web(routes, openapi, collection_of)
        .functions(functions::registry)
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

/// The worker's subscription, as the operator's Stream should declare it.
pub fn subscription() -> SubscriptionRequest<'static> {
    spec().subscription()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_STREAM: &str = include_str!("../../../examples/30-ecommerce.yaml");

    #[test]
    fn the_worker_subscribes_to_exactly_the_events_that_trigger_its_functions() {
        let keys = subscription().routing_keys;
        assert_eq!(keys, functions::registry().trigger_keys("order"));
    }

    #[test]
    fn every_step_an_order_waits_for_is_driven_by_an_event_its_worker_subscribes_to() {
        let keys = subscription().routing_keys;
        for status in events::STATUSES {
            let order = Order {
                status: (*status).to_owned(),
                ..Order::default()
            };
            if let Some(awaits) = order.in_flight() {
                assert!(
                    keys.contains(&format!("order.{awaits}")),
                    "{status}: {awaits}"
                );
            }
        }
    }

    #[test]
    fn the_example_stream_binds_exactly_the_events_that_trigger_its_functions() {
        let (example, wanted) = (EXAMPLE_STREAM, spec().event_types_line());
        assert!(example.contains(&wanted), "the order worker: {wanted}");
    }
}
