//! The warehouse commands that write more than one stream at once, in one
//! transaction of the event store: stocking items, `reserveOrder` (one
//! reservation per unit), `connectInventory` (a reservation takes one
//! available item) and releasing (the reservation and its item together).
//!
//! Two reservations can never take the same item: taking one appends to the
//! item's stream at the version it was read at, so of two concurrent takers
//! exactly one commits and the other picks again — with any number of web
//! replicas, since the check is the store's own optimistic concurrency
//! (the original used a Redis lock).
//!
//! Each command states only its decision; the runtime's command core
//! (`eventflow_runtime::command`) checks the Idempotency-Key, replays a
//! repeat, commits, decides again after a lost race and answers.

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{get, post},
};
use eventflow_runtime::{
    Aggregate,
    aggregate::forbidden,
    command::{Attempts, Begun, Decision, write},
    hal::{self, link, represent},
    problem::{JsonBody, Problem},
    web::WebContext,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

use crate::{
    inventory::{INVENTORY_RELEASED, InventoryItem, RESERVATION_CONNECTED},
    reservation::{
        INVENTORY_CONNECTED, RESERVATION_FAILED, RESERVATION_RELEASED, RESERVATION_SUCCEEDED,
        Reservation,
    },
    warehouse::Warehouse,
};

/// Attempts to take an item before answering 503 (the worker then retries).
const MAX_TAKE_ATTEMPTS: usize = 64;
const MAX_STOCK_PER_REQUEST: u32 = 1_000;
const MAX_UNITS_PER_ORDER: u32 = 1_000;
/// Available items a taker reads (the oldest) and picks one of at random.
const TAKE_CANDIDATES: i64 = 32;

mod reserve;
mod stocking;

use reserve::{connect_inventory, release_inventory, release_item, reserve_order};
use stocking::{find_by_products, stock, warehouse_inventory};

pub fn routes() -> Router<WebContext> {
    Router::new()
        .route(
            "/v1/warehouses/search/findByProducts",
            get(find_by_products),
        )
        .route(
            "/v1/warehouses/{id}/inventory",
            post(stock).get(warehouse_inventory),
        )
        .route(
            "/v1/warehouses/{id}/commands/reserveOrder",
            post(reserve_order),
        )
        .route(
            "/v1/reservations/{id}/commands/connectInventory",
            post(connect_inventory),
        )
        .route(
            "/v1/reservations/{id}/commands/releaseInventory",
            post(release_inventory),
        )
        .route("/v1/inventory/{id}/commands/release", post(release_item))
}

/// [`MAX_TAKE_ATTEMPTS`], then a 503 saying `detail` (the worker retries
/// later).
fn take_attempts(detail: &str) -> Attempts {
    Attempts {
        max: MAX_TAKE_ATTEMPTS,
        exhausted: Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            detail,
        ),
    }
}

/// A cheap random index (which of several free items to try first), so
/// concurrent takers spread over the items instead of racing for one.
fn random_index(len: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % len.max(1) as u128) as usize
}
