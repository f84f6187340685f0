//! Reserving: `reserveOrder` (one reservation per unit), `connectInventory`
//! (a reservation takes one available item, or fails when none is left) and
//! releasing (the reservation and its item together) — each one atomic
//! commit over every stream it changes.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrderLine {
    product_id: String,
    quantity: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReserveOrder {
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
pub(super) async fn reserve_order(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<ReserveOrder>,
) -> Result<Response, Problem> {
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
    // A second attempt finds the reservations of the request it lost to.
    let attempts = Attempts {
        max: 2,
        exhausted: Problem::conflict(
            "the order's reservations are being created concurrently; try again",
        ),
    };
    let target = format!("/v1/warehouses/{id}/commands/reserveOrder");
    ctx.run_command(&headers, &target, attempts, || async {
        let (warehouse, _) = ctx.require::<Warehouse>(&id).await?;
        check_reserve_order(&input)?;
        let answer = |reservations: Vec<Value>| {
            let mut body = represent(&warehouse, &id, &base);
            body["_embedded"] = json!({ "reservations": reservations });
            body
        };
        if ctx.load::<Reservation>(&ids[0].0).await?.is_some() {
            // Already reserved: answer with the reservations as they are.
            let mut existing = Vec::new();
            for (rid, _) in &ids {
                if let Some((r, _)) = ctx.load::<Reservation>(rid).await? {
                    existing.push(represent(&r, rid, &base));
                }
            }
            return Ok(Decision::Answer(hal::response(
                StatusCode::OK,
                answer(existing),
            )));
        }
        let (writes, reservations) = ids
            .iter()
            .map(|(rid, product)| {
                let events =
                    Reservation::requested(rid, &input.order_id, &input.order_href, &id, product);
                let (write, reservation) = write(rid, &Reservation::default(), 0, events);
                (write, represent(&reservation, rid, &base))
            })
            .unzip();
        Ok(Decision::commit(
            writes,
            StatusCode::OK,
            answer(reservations),
        ))
    })
    .await
}

/// `connectInventory`: the reservation takes one available item of its
/// product in its warehouse (RESERVATION_SUCCEEDED), or fails when none is
/// left (RESERVATION_FAILED). Losing a race for an item picks another.
pub(super) async fn connect_inventory(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let base = hal::base_url(&headers);
    let target = format!("/v1/reservations/{id}/commands/connectInventory");
    let attempts = take_attempts("too many concurrent takers for this product; try again");
    ctx.run_command(&headers, &target, attempts, || async {
        let (reservation, version) = ctx.require::<Reservation>(&id).await?;
        if !reservation.commands().contains(&"connectInventory") {
            return Err(forbidden(&reservation, "connectInventory").into());
        }
        // Only the available items of its product in its warehouse, through
        // the store's lookup index: never the held, sold or other items.
        let free = ctx
            .store
            .lookup::<InventoryItem>(
                &reservation.warehouse_id,
                Some(&InventoryItem::stock_key(&reservation.product_id, true)),
                TAKE_CANDIDATES,
            )
            .await?;
        let Some((pick, _)) = free.get(random_index(free.len())) else {
            let failed = reservation.event(
                RESERVATION_FAILED,
                json!({ "reason": format!("{} is out of stock", reservation.product_id) }),
            );
            let (write, failed) = write(&id, &reservation, version, vec![failed]);
            let body = represent(&failed, &id, &base);
            return Ok(Decision::commit(vec![write], StatusCode::OK, body));
        };
        let Some((item, item_version)) = ctx.load::<InventoryItem>(pick).await? else {
            return Ok(Decision::Again);
        };
        if !item.available() {
            return Ok(Decision::Again);
        }
        let taken = json!({ "inventoryId": item.inventory_id });
        let (reserved, succeeded) = write(
            &id,
            &reservation,
            version,
            vec![
                reservation.event(INVENTORY_CONNECTED, taken.clone()),
                reservation.event(RESERVATION_SUCCEEDED, taken),
            ],
        );
        let (connected, _) = write(
            &item.inventory_id,
            &item,
            item_version,
            vec![item.event(RESERVATION_CONNECTED, &id)],
        );
        let body = represent(&succeeded, &id, &base);
        Ok(Decision::commit(
            vec![reserved, connected],
            StatusCode::OK,
            body,
        ))
    })
    .await
}

/// Releasing reservation `id` and, in the same commit, the item it holds.
async fn release(ctx: &WebContext, id: &str, base: &str) -> Result<Decision, Problem> {
    let (reservation, version) = ctx.require::<Reservation>(id).await?;
    let Some(item_id) = reservation
        .inventory_id
        .clone()
        .filter(|_| reservation.holds())
    else {
        return Err(forbidden(&reservation, "releaseInventory").into());
    };
    let (item, item_version) = ctx.require::<InventoryItem>(&item_id).await?;
    let (released, after) = write(
        id,
        &reservation,
        version,
        vec![reservation.event(RESERVATION_RELEASED, json!({ "inventoryId": item_id }))],
    );
    let mut writes = vec![released];
    if item.held() && item.reservation_id.as_deref() == Some(id) {
        let (given_back, _) = write(
            &item_id,
            &item,
            item_version,
            vec![item.event(INVENTORY_RELEASED, id)],
        );
        writes.push(given_back);
    } else if item.reservation_id.as_deref() == Some(id) {
        // Sold (INVENTORY_RESERVED): the order succeeded, nothing to give back.
        return Err(forbidden(&item, "release").into());
    }
    let body = represent(&after, id, base);
    Ok(Decision::commit(writes, StatusCode::OK, body))
}

const RELEASE_TOO_FAST: &str = "reservation changing too fast; try again";

/// `releaseInventory`: the reservation gives its item back (available again).
pub(super) async fn release_inventory(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let base = hal::base_url(&headers);
    let target = format!("/v1/reservations/{id}/commands/releaseInventory");
    let attempts = take_attempts(RELEASE_TOO_FAST);
    ctx.run_command(&headers, &target, attempts, || release(&ctx, &id, &base))
        .await
}

/// `release` on an item: releases the reservation holding it.
pub(super) async fn release_item(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    // A repeat is answered before the item is looked at: the first release
    // left it available.
    let target = format!("/v1/inventory/{id}/commands/release");
    let command = match ctx.begin_command(&headers, &target).await? {
        Begun::Repeat(first) => return Ok(first),
        Begun::New(command) => command,
    };
    let (item, _) = ctx.require::<InventoryItem>(&id).await?;
    let Some(holder) = item.reservation_id.clone().filter(|_| item.held()) else {
        return Err(forbidden(&item, "release").into());
    };
    let base = hal::base_url(&headers);
    command
        .decide(take_attempts(RELEASE_TOO_FAST), || {
            release(&ctx, &holder, &base)
        })
        .await
}
