//! The warehouse bounded context on the eventflow runtime: one web role
//! serving three aggregates — [`warehouse`], [`inventory`] items and
//! [`reservation`]s — plus the multi-stream commands of [`stock`] that
//! keep two reservations from ever taking the same item, and the
//! reservation-driving [`functions`] of its worker.

pub mod functions;
pub mod inventory;
pub mod reservation;
pub mod stock;
pub mod warehouse;

use axum::Router;
use eventflow_contract::bindings::SubscriptionRequest;
use eventflow_runtime::{
    Aggregate,
    app::{AppSpec, Retry, Worker},
    openapi::OpenApi,
    web::{WebContext, aggregate_routes},
};
use serde_json::json;

pub use inventory::InventoryItem;
pub use reservation::Reservation;
pub use warehouse::Warehouse;

pub const APP: &str = "warehouse";

/// The warehouse context: its worker drives reservations only, on the
/// events of its own destination that trigger one of its functions, retrying
/// like every saga step (an outcome waits for its order to be reserving).
pub fn spec() -> AppSpec {
    let worker = Worker::triggered_by("warehouse-worker", Reservation::KIND, Retry::SAGA_STEP);
    AppSpec::new(APP, "warehouse", worker)
        .web(routes, openapi, collection_of)
        .functions(functions::registry)
}

pub fn routes() -> Router<WebContext> {
    // The static routes of `stock` win over the generic
    // `/commands/{command}` ones for the multi-stream commands.
    aggregate_routes::<Warehouse>()
        .merge(aggregate_routes::<InventoryItem>())
        .merge(aggregate_routes::<Reservation>())
        .merge(stock::routes())
}

pub fn openapi() -> serde_json::Value {
    let mut doc = OpenApi::new("eventflow warehouse")
        .aggregate::<Warehouse>()
        .aggregate::<InventoryItem>()
        .aggregate::<Reservation>()
        .build();
    let problem = json!({ "description": "Problem", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let hal = json!({ "description": "HAL document", "content": { "application/hal+json": { "schema": { "type": "object" } } } });
    doc["paths"]["/v1/warehouses/{id}/inventory"] = json!({
        "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
        "post": { "operationId": "stockInventory", "summary": "Stock quantity (default 1) items of a product; each becomes available.",
                  "requestBody": { "required": true, "content": { "application/json": { "schema": {
                      "type": "object", "required": ["productId"],
                      "properties": { "productId": { "type": "string", "minLength": 1, "maxLength": 200 },
                                      "quantity": { "type": "integer", "minimum": 1, "maximum": 1000 } } } } } },
                  "responses": { "201": hal, "400": problem, "404": problem } },
        "get": { "operationId": "warehouseInventory", "summary": "The warehouse's items, and per product how many are available, held and sold.",
                 "responses": { "200": hal, "404": problem } }
    });
    doc["paths"]["/v1/warehouses/search/findByProducts"] = json!({
        "get": { "operationId": "findWarehousesByProducts", "summary": "Warehouses holding every product, most available units first.",
                 "parameters": [{ "name": "productIds", "in": "query", "required": true, "schema": { "type": "string" },
                                  "description": "Comma-separated product ids." }],
                 "responses": { "200": hal, "400": problem } }
    });
    doc
}

fn collection_of(aggregate: &str) -> &'static str {
    match aggregate {
        "inventory" => "inventory",
        "reservation" => "reservations",
        _ => "warehouses",
    }
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
        assert_eq!(keys, functions::registry().trigger_keys("reservation"));
    }

    #[test]
    fn every_step_a_reservation_waits_for_is_driven_by_an_event_its_worker_subscribes_to() {
        let keys = subscription().routing_keys;
        for status in reservation::EVENT_TYPES {
            let reservation = Reservation {
                status: (*status).to_owned(),
                ..Reservation::default()
            };
            if let Some(awaits) = reservation.in_flight() {
                assert!(
                    keys.contains(&format!("reservation.{awaits}")),
                    "{status}: {awaits}"
                );
            }
        }
        // Items and warehouses are moved by reservations and orders only.
        assert_eq!(InventoryItem::default().in_flight(), None);
    }

    #[test]
    fn the_example_stream_binds_exactly_the_events_that_trigger_its_functions() {
        let (example, wanted) = (EXAMPLE_STREAM, spec().event_types_line());
        assert!(example.contains(&wanted), "the warehouse worker: {wanted}");
    }
}
