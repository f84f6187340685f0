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

use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use eventflow_runtime::{
    Aggregate,
    aggregate::{forbidden, replay},
    hal::{self, HAL_JSON, link, represent},
    problem::{JsonBody, Problem},
    store::{AppendError, Commit, IdempotentResult, NewEvent, StreamWrite},
    web::{IDEMPOTENCY_KEY, WebContext},
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

fn hal_response(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, HAL_JSON)], body.to_string()).into_response()
}

async fn load<A: Aggregate>(ctx: &WebContext, id: &str) -> Result<Option<(A, i64)>, Problem> {
    let events = ctx.store.load(A::KIND, id).await?;
    let version = events.last().map_or(0, |e| e.version);
    Ok(replay::<A>(&events).map(|a| (a, version)))
}

async fn require<A: Aggregate>(ctx: &WebContext, id: &str) -> Result<(A, i64), Problem> {
    load::<A>(ctx, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no {} {id}", A::KIND)))
}

fn write<A: Aggregate>(id: &str, state: &A, version: i64, events: Vec<NewEvent>) -> StreamWrite {
    let mut next = state.clone();
    for (i, e) in events.iter().enumerate() {
        next.apply(&e.at_version(A::KIND, id, version + i as i64 + 1));
    }
    StreamWrite {
        aggregate_type: A::KIND.to_owned(),
        aggregate_id: id.to_owned(),
        expected_version: version,
        events,
        snapshot: serde_json::to_value(&next).unwrap_or(Value::Null),
        lookup: next.lookup(),
    }
}

/// The state a write leads to (for the response).
fn after<A: Aggregate>(write: &StreamWrite) -> A {
    serde_json::from_value(write.snapshot.clone()).unwrap_or_default()
}

/// The scoped idempotency key of a request, if it carries one.
fn idempotency_key(headers: &HeaderMap, target: &str) -> Result<Option<String>, Problem> {
    match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(k)) if !k.is_empty() && k.len() <= 512 => Ok(Some(format!("POST {target} {k}"))),
        Some(_) => Err(Problem::bad_request(
            "Idempotency-Key",
            "must be 1 to 512 visible ASCII characters",
        )),
    }
}

/// What a request's Idempotency-Key says: its first answer, to replay, or
/// the scoped key (if any) to record this request's answer under.
enum Seen {
    Before(Response),
    New(Option<String>),
}

async fn idempotency(ctx: &WebContext, headers: &HeaderMap, target: &str) -> Result<Seen, Problem> {
    let key = idempotency_key(headers, target)?;
    if let Some(k) = &key
        && let Some(first) = ctx.store.idempotent_result(k).await?
    {
        return Ok(Seen::Before(replayed(first)));
    }
    Ok(Seen::New(key))
}

fn replayed(first: IdempotentResult) -> Response {
    let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
    let mut response = hal_response(status, first.body);
    response.headers_mut().insert(
        "idempotent-replayed",
        header::HeaderValue::from_static("true"),
    );
    response
}

/// How a commit ended.
enum Committed {
    Done,
    /// Another writer got there first: decide again.
    Conflict,
    /// The idempotency key was used by an earlier request: its result.
    Repeat(IdempotentResult),
}

async fn commit(ctx: &WebContext, commit: Commit) -> Result<Committed, Problem> {
    match ctx.store.append(&commit).await {
        Ok(events) => {
            ctx.metrics.events_appended.inc_by(events.len() as u64);
            ctx.relay.notify_one();
            Ok(Committed::Done)
        }
        Err(AppendError::Conflict { .. }) => {
            ctx.metrics.concurrency_conflicts.inc();
            Ok(Committed::Conflict)
        }
        Err(AppendError::DuplicateKey(key)) => match ctx.store.idempotent_result(&key).await? {
            Some(first) => Ok(Committed::Repeat(first)),
            None => Ok(Committed::Conflict),
        },
        Err(AppendError::Store(e)) => Err(e.into()),
        Err(e) => Err(Problem::conflict(e.to_string())),
    }
}

/// Commits `writes` with the idempotency record of `(key, status, body)`.
async fn commit_answer(
    ctx: &WebContext,
    writes: Vec<StreamWrite>,
    key: &Option<String>,
    status: StatusCode,
    body: Value,
) -> Result<Option<Response>, Problem> {
    let idempotency = key.clone().map(|key| IdempotentResult {
        key,
        status: status.as_u16(),
        body: body.clone(),
    });
    match commit(
        ctx,
        Commit {
            writes,
            claims: vec![],
            idempotency,
        },
    )
    .await?
    {
        Committed::Done => Ok(Some(hal_response(status, body))),
        Committed::Repeat(first) => Ok(Some(replayed(first))),
        Committed::Conflict => Ok(None),
    }
}

/// A cheap random index (which of several free items to try first), so
/// concurrent takers spread over the items instead of racing for one.
fn random_index(len: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % len.max(1) as u128) as usize
}
