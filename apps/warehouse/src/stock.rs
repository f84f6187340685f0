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

/// Every inventory item of the store, as of its last commit.
async fn all_items(ctx: &WebContext) -> Result<Vec<InventoryItem>, Problem> {
    let rows = ctx.store.list(InventoryItem::KIND, 0, i64::MAX).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, _, state)| serde_json::from_value(state).ok())
        .collect())
}

/// A cheap random index (which of several free items to try first), so
/// concurrent takers spread over the items instead of racing for one.
fn random_index(len: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % len.max(1) as u128) as usize
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StockRequest {
    product_id: String,
    #[serde(default)]
    quantity: Option<u32>,
}

/// `POST /v1/warehouses/{id}/inventory`: stocks `quantity` (default 1)
/// items of a product; each emits INVENTORY_CREATED and is available.
async fn stock(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<StockRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers, &format!("/v1/warehouses/{id}/inventory"))?;
    if let Some(k) = &key
        && let Some(first) = ctx.store.idempotent_result(k).await?
    {
        return Ok(replayed(first));
    }
    require::<Warehouse>(&ctx, &id).await?;
    let product = input.product_id.trim();
    if product.is_empty() || product.len() > 200 {
        return Err(Problem::bad_request(
            "productId",
            "must be 1 to 200 characters",
        ));
    }
    let quantity = input.quantity.unwrap_or(1);
    if quantity == 0 || quantity > MAX_STOCK_PER_REQUEST {
        return Err(Problem::bad_request("quantity", "must be 1 to 1000"));
    }
    let base = hal::base_url(&headers);
    let mut writes = Vec::new();
    let mut items = Vec::new();
    for _ in 0..quantity {
        let item_id = uuid::Uuid::new_v4().to_string();
        let w = write(
            &item_id,
            &InventoryItem::default(),
            0,
            InventoryItem::stocked(&item_id, &id, product),
        );
        items.push(represent(&after::<InventoryItem>(&w), &item_id, &base));
        writes.push(w);
    }
    let body = json!({
        "_embedded": { "inventory": items },
        "_links": { "self": link(format!("{base}/v1/warehouses/{id}/inventory")),
                    "warehouse": link(format!("{base}/v1/warehouses/{id}")) },
    });
    commit_answer(&ctx, writes, &key, StatusCode::CREATED, body)
        .await?
        .ok_or_else(|| Problem::conflict("stocking raced with itself; try again"))
}

/// `GET /v1/warehouses/{id}/inventory`: the warehouse's items and, per
/// product, how many are available, held and sold.
async fn warehouse_inventory(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require::<Warehouse>(&ctx, &id).await?;
    let base = hal::base_url(&headers);
    let items: Vec<InventoryItem> = all_items(&ctx)
        .await?
        .into_iter()
        .filter(|i| i.warehouse_id == id)
        .collect();
    let mut products: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
    for i in &items {
        let counts = products.entry(&i.product_id).or_default();
        let slot = if i.available() {
            0
        } else if i.held() {
            1
        } else {
            2
        };
        counts[slot] += 1;
    }
    let products: serde_json::Map<String, Value> = products
        .into_iter()
        .map(|(p, [a, h, s])| {
            (
                p.to_owned(),
                json!({ "available": a, "held": h, "sold": s, "created": a + h + s }),
            )
        })
        .collect();
    let embedded: Vec<Value> = items
        .iter()
        .map(|i| represent(i, &i.inventory_id, &base))
        .collect();
    Ok(hal_response(
        StatusCode::OK,
        json!({
            "products": products,
            "_embedded": { "inventory": embedded },
            "_links": { "self": link(format!("{base}/v1/warehouses/{id}/inventory")),
                        "warehouse": link(format!("{base}/v1/warehouses/{id}")) },
        }),
    ))
}

/// `GET /v1/warehouses/search/findByProducts?productIds=a,b`: the
/// warehouses holding every product, the one with most available units first.
async fn find_by_products(
    State(ctx): State<WebContext>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let wanted: Vec<&str> = q
        .get("productIds")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if wanted.is_empty() {
        return Err(Problem::bad_request(
            "productIds",
            "name at least one product, comma-separated",
        ));
    }
    let mut held: HashMap<&str, (usize, std::collections::HashSet<&str>)> = HashMap::new();
    let items = all_items(&ctx).await?;
    for i in items
        .iter()
        .filter(|i| wanted.contains(&i.product_id.as_str()))
    {
        let entry = held.entry(&i.warehouse_id).or_default();
        entry.1.insert(&i.product_id);
        entry.0 += usize::from(i.available());
    }
    let mut found: Vec<(&str, usize)> = held
        .iter()
        .filter(|(_, (_, products))| products.len() == wanted.len())
        .map(|(w, (available, _))| (*w, *available))
        .collect();
    found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let base = hal::base_url(&headers);
    let mut warehouses = Vec::new();
    for (id, _) in found {
        if let Some((w, _)) = load::<Warehouse>(&ctx, id).await? {
            warehouses.push(represent(&w, id, &base));
        }
    }
    Ok(hal_response(
        StatusCode::OK,
        json!({ "_embedded": { "warehouses": warehouses },
                "_links": { "self": link(format!("{base}/v1/warehouses/search/findByProducts?productIds={}", wanted.join(","))) } }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderLine {
    product_id: String,
    quantity: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveOrder {
    order_id: String,
    order_href: String,
    line_items: Vec<OrderLine>,
}

fn check_reserve_order(input: &ReserveOrder) -> Result<(), Problem> {
    let id_ok = !input.order_id.is_empty()
        && input.order_id.len() <= 100
        && input
            .order_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Err(Problem::bad_request(
            "orderId",
            "must be 1 to 100 letters, digits, - or _",
        ));
    }
    if !input.order_href.starts_with("http://") && !input.order_href.starts_with("https://") {
        return Err(Problem::bad_request(
            "orderHref",
            "must be an absolute http(s) URL",
        ));
    }
    let units: u32 = input.line_items.iter().map(|l| l.quantity).sum();
    if input.line_items.is_empty() || units == 0 || units > MAX_UNITS_PER_ORDER {
        return Err(Problem::bad_request(
            "lineItems",
            "must hold 1 to 1000 units",
        ));
    }
    if input
        .line_items
        .iter()
        .any(|l| l.product_id.trim().is_empty())
    {
        return Err(Problem::bad_request(
            "lineItems",
            "every line item needs a productId",
        ));
    }
    Ok(())
}

/// `reserveOrder`: one reservation per unit of every line item, with ids
/// `<orderId>-<line>-<unit>` — so asking twice for one order never makes a
/// second set (the repeat answers with the first).
async fn reserve_order(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ReserveOrder>,
) -> Result<Response, Problem> {
    let key = idempotency_key(
        &headers,
        &format!("/v1/warehouses/{id}/commands/reserveOrder"),
    )?;
    if let Some(k) = &key
        && let Some(first) = ctx.store.idempotent_result(k).await?
    {
        return Ok(replayed(first));
    }
    let (warehouse, _) = require::<Warehouse>(&ctx, &id).await?;
    check_reserve_order(&input)?;
    let base = hal::base_url(&headers);
    let order_id = input.order_id.as_str();
    let ids: Vec<(String, &str)> = input
        .line_items
        .iter()
        .enumerate()
        .flat_map(|(line, l)| {
            (0..l.quantity)
                .map(move |unit| (format!("{order_id}-{line}-{unit}"), l.product_id.trim()))
        })
        .collect();
    let answer = |reservations: Vec<Value>| {
        let mut body = represent(&warehouse, &id, &base);
        body["_embedded"] = json!({ "reservations": reservations });
        body
    };
    for _ in 0..2 {
        if load::<Reservation>(&ctx, &ids[0].0).await?.is_some() {
            // Already reserved: answer with the reservations as they are.
            let mut existing = Vec::new();
            for (rid, _) in &ids {
                if let Some((r, _)) = load::<Reservation>(&ctx, rid).await? {
                    existing.push(represent(&r, rid, &base));
                }
            }
            return Ok(hal_response(StatusCode::OK, answer(existing)));
        }
        let writes: Vec<StreamWrite> = ids
            .iter()
            .map(|(rid, product)| {
                let events =
                    Reservation::requested(rid, &input.order_id, &input.order_href, &id, product);
                write(rid, &Reservation::default(), 0, events)
            })
            .collect();
        let reservations = writes
            .iter()
            .map(|w| represent(&after::<Reservation>(w), &w.aggregate_id, &base))
            .collect();
        if let Some(response) =
            commit_answer(&ctx, writes, &key, StatusCode::OK, answer(reservations)).await?
        {
            return Ok(response);
        }
    }
    Err(Problem::conflict(
        "the order's reservations are being created concurrently; try again",
    ))
}

/// `connectInventory`: the reservation takes one available item of its
/// product in its warehouse (RESERVATION_SUCCEEDED), or fails when none is
/// left (RESERVATION_FAILED). Losing a race for an item picks another.
async fn connect_inventory(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let key = idempotency_key(
        &headers,
        &format!("/v1/reservations/{id}/commands/connectInventory"),
    )?;
    if let Some(k) = &key
        && let Some(first) = ctx.store.idempotent_result(k).await?
    {
        return Ok(replayed(first));
    }
    let base = hal::base_url(&headers);
    for _ in 0..MAX_TAKE_ATTEMPTS {
        let (reservation, version) = require::<Reservation>(&ctx, &id).await?;
        if !reservation.commands().contains(&"connectInventory") {
            return Err(forbidden(&reservation, "connectInventory").into());
        }
        let free: Vec<InventoryItem> = all_items(&ctx)
            .await?
            .into_iter()
            .filter(|i| {
                i.warehouse_id == reservation.warehouse_id
                    && i.product_id == reservation.product_id
                    && i.available()
            })
            .collect();
        let writes = if free.is_empty() {
            let failed = reservation.event(
                RESERVATION_FAILED,
                json!({ "reason": format!("{} is out of stock", reservation.product_id) }),
            );
            vec![write(&id, &reservation, version, vec![failed])]
        } else {
            let pick = &free[random_index(free.len())];
            let Some((item, item_version)) =
                load::<InventoryItem>(&ctx, &pick.inventory_id).await?
            else {
                continue;
            };
            if !item.available() {
                continue;
            }
            let taken = json!({ "inventoryId": item.inventory_id });
            vec![
                write(
                    &id,
                    &reservation,
                    version,
                    vec![
                        reservation.event(INVENTORY_CONNECTED, taken.clone()),
                        reservation.event(RESERVATION_SUCCEEDED, taken),
                    ],
                ),
                write(
                    &item.inventory_id,
                    &item,
                    item_version,
                    vec![item.event(RESERVATION_CONNECTED, &id)],
                ),
            ]
        };
        let body = represent(&after::<Reservation>(&writes[0]), &id, &base);
        if let Some(response) = commit_answer(&ctx, writes, &key, StatusCode::OK, body).await? {
            return Ok(response);
        }
    }
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
        "too many concurrent takers for this product; try again",
    ))
}

/// Releases reservation `id` and, atomically, the item it holds.
async fn release(
    ctx: &WebContext,
    id: &str,
    headers: &HeaderMap,
    key: Option<String>,
) -> Result<Response, Problem> {
    if let Some(k) = &key
        && let Some(first) = ctx.store.idempotent_result(k).await?
    {
        return Ok(replayed(first));
    }
    let base = hal::base_url(headers);
    for _ in 0..MAX_TAKE_ATTEMPTS {
        let (reservation, version) = require::<Reservation>(ctx, id).await?;
        let Some(item_id) = reservation
            .inventory_id
            .clone()
            .filter(|_| reservation.holds())
        else {
            return Err(forbidden(&reservation, "releaseInventory").into());
        };
        let (item, item_version) = require::<InventoryItem>(ctx, &item_id).await?;
        let mut writes = vec![write(
            id,
            &reservation,
            version,
            vec![reservation.event(RESERVATION_RELEASED, json!({ "inventoryId": item_id }))],
        )];
        if item.held() && item.reservation_id.as_deref() == Some(id) {
            writes.push(write(
                &item_id,
                &item,
                item_version,
                vec![item.event(INVENTORY_RELEASED, id)],
            ));
        } else if item.reservation_id.as_deref() == Some(id) {
            // Sold (INVENTORY_RESERVED): the order succeeded, nothing to give back.
            return Err(forbidden(&item, "release").into());
        }
        let body = represent(&after::<Reservation>(&writes[0]), id, &base);
        if let Some(response) = commit_answer(ctx, writes, &key, StatusCode::OK, body).await? {
            return Ok(response);
        }
    }
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
        "reservation changing too fast; try again",
    ))
}

/// `releaseInventory`: the reservation gives its item back (available again).
async fn release_inventory(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let key = idempotency_key(
        &headers,
        &format!("/v1/reservations/{id}/commands/releaseInventory"),
    )?;
    release(&ctx, &id, &headers, key).await
}

/// `release` on an item: releases the reservation holding it.
async fn release_item(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers, &format!("/v1/inventory/{id}/commands/release"))?;
    let (item, _) = require::<InventoryItem>(&ctx, &id).await?;
    match item.reservation_id.clone().filter(|_| item.held()) {
        Some(holder) => release(&ctx, &holder, &headers, key).await,
        None => Err(forbidden(&item, "release").into()),
    }
}
