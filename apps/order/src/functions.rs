//! The order saga's action-mapped functions: one per transition, each
//! triggered by an order event, each acting on the order *as it is now*
//! (so a redelivered or late event does nothing twice) by following links —
//! to the order, to its reservations and payment, and into the warehouse
//! and payment contexts through their peer URLs. See README.md for the map.

use eventflow_runtime::{
    cloudevent::CloudEvent,
    consumer::HandlerError,
    functions::{Function, Outcome, Registry},
    hypermedia::{self, Ran, client, idempotency_key, link},
};
use serde_json::{Value, json};

use crate::events::{
    ACCOUNT_CONNECTED, ORDER_CREATED, PAYMENT_CONNECTED, PAYMENT_CREATED, PAYMENT_FAILED,
    PAYMENT_SUCCEEDED, RESERVATION_ADDED, RESERVATION_FAILED, RESERVATION_PENDING,
    RESERVATION_SUCCEEDED, SUCCEEDED,
};

/// The id at the end of a resource's `self` link.
fn id_of(resource: &Value) -> String {
    hypermedia::link(resource, "self")
        .ok()
        .and_then(|s| s.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// Runs `command` on `resource` (if offered) and records it in `outcome`.
async fn run(
    event: &CloudEvent,
    resource: &Value,
    command: &str,
    body: Option<&Value>,
    outcome: &mut Outcome,
) -> Result<Ran, HandlerError> {
    let key = idempotency_key(event, command, &id_of(resource));
    let ran = client().run(resource, command, body, &key).await?;
    outcome.record(command, &ran);
    Ok(ran)
}

fn status(resource: &Value) -> &str {
    resource["status"].as_str().unwrap_or_default()
}

/// The order of an order event, or `None` for another aggregate's event
/// that shares the name (e.g. `reservation.RESERVATION_PENDING`).
async fn order_of(event: &CloudEvent) -> Result<Option<Value>, HandlerError> {
    client().subject_of_kind(event, "order").await
}

async fn connect_account(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    let account_id = order["accountId"].as_str().unwrap_or_default();
    // The account link is known only where the account context is deployed.
    let account_href = hypermedia::peer_url("account")
        .ok()
        .map(|base| format!("{base}/v1/accounts/{account_id}"));
    let body = json!({ "accountId": account_id, "accountHref": account_href });
    run(&event, &order, "connectAccount", Some(&body), &mut outcome).await?;
    Ok(outcome)
}

async fn reserve_inventory(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    run(&event, &order, "reserveInventory", None, &mut outcome).await?;
    Ok(outcome)
}

/// Finds a warehouse holding every product and asks it to reserve the
/// order's units; with no such warehouse the reservation fails at once.
async fn request_reservations(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    if status(&order) != RESERVATION_PENDING {
        return Ok(outcome);
    }
    let items = order["lineItems"].as_array().cloned().unwrap_or_default();
    let mut products: Vec<&str> = items
        .iter()
        .filter_map(|i| i["productId"].as_str())
        .collect();
    products.sort_unstable();
    products.dedup();
    let search = format!(
        "{}/v1/warehouses/search/findByProducts",
        hypermedia::peer_url("warehouse")?
    );
    let url = reqwest::Url::parse_with_params(&search, &[("productIds", products.join(","))])
        .map_err(|e| HandlerError::Failed(e.to_string()))?;
    let found = client().get(url.as_str()).await?;
    let warehouse = found["_embedded"]["warehouses"].get(0).cloned();
    let Some(warehouse) = warehouse else {
        let body = json!({ "failure": format!("no warehouse holds every product of {}", products.join(", ")) });
        run(
            &event,
            &order,
            "completeReservation",
            Some(&body),
            &mut outcome,
        )
        .await?;
        return Ok(outcome);
    };
    let body = json!({
        "orderId": order["orderId"],
        "orderHref": link(&order, "self")?,
        "lineItems": items,
    });
    if let Ran::Done(reserved) = run(
        &event,
        &warehouse,
        "reserveOrder",
        Some(&body),
        &mut outcome,
    )
    .await?
    {
        collect_outcomes(&event, &order, &reserved, &mut outcome).await?;
    }
    Ok(outcome)
}

/// Records the outcomes reservations already have. The warehouse reports
/// each outcome itself; this pull covers a report that gave up (its retries
/// dead-lettered while this worker was down), so no outcome is ever lost.
/// A reservation the answer shows undecided is read again: a repeated
/// `reserveOrder` (a redelivered or re-driven event, same key) answers as
/// the first time did, before any outcome.
async fn collect_outcomes(
    event: &CloudEvent,
    order: &Value,
    reserved: &Value,
    outcome: &mut Outcome,
) -> Result<(), HandlerError> {
    let listed: Vec<&Value> = order["reservations"]
        .as_array()
        .map(|rs| rs.iter().map(|r| &r["reservationId"]).collect())
        .unwrap_or_default();
    for answered in reserved["_embedded"]["reservations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if listed.contains(&&answered["reservationId"]) {
            continue;
        }
        let fresh;
        let r = match answered["status"].as_str() {
            Some("RESERVATION_SUCCEEDED" | "RESERVATION_FAILED") => answered,
            _ => {
                fresh = client().refresh(answered).await?;
                &fresh
            }
        };
        let result = match r["status"].as_str() {
            Some("RESERVATION_SUCCEEDED") => "SUCCEEDED",
            Some("RESERVATION_FAILED") => "FAILED",
            _ => continue,
        };
        let id = r["reservationId"].as_str().unwrap_or_default();
        let body = json!({ "reservationId": id, "outcome": result, "href": link(r, "self")? });
        let key = idempotency_key(event, "addReservation", id);
        if client()
            .run(order, "addReservation", Some(&body), &key)
            .await?
            .done()
        {
            outcome.ran.push("addReservation".to_owned());
        }
    }
    Ok(())
}

async fn complete_reservation(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    run(&event, &order, "completeReservation", None, &mut outcome).await?;
    Ok(outcome)
}

/// Creates the payment for the order's total in the payment context (the
/// idempotency key makes a redelivery return the same payment) and records it.
async fn create_payment(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    if status(&order) != RESERVATION_SUCCEEDED {
        return Ok(outcome);
    }
    let payments = format!("{}/v1/payments", hypermedia::peer_url("payment")?);
    let body = json!({
        "orderId": order["orderId"],
        "amount": order["total"],
        "paymentMethod": order["paymentMethod"],
        "orderHref": link(&order, "self")?,
    });
    let key = idempotency_key(&event, "createPayment", &id_of(&order));
    let payment = client().create(&payments, &body, &key).await?;
    let body = json!({ "paymentId": payment["paymentId"], "paymentHref": link(&payment, "self")? });
    run(&event, &order, "createPayment", Some(&body), &mut outcome).await?;
    Ok(outcome)
}

/// Connects both ways: the order to its payment, then the payment to its
/// order (which lets the payment context process it).
async fn connect_payment(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    if status(&order) == PAYMENT_CREATED || status(&order) == PAYMENT_CONNECTED {
        run(&event, &order, "connectPayment", None, &mut outcome).await?;
        let payment = client().get(link(&order, "payment")?).await?;
        run(&event, &payment, "connectOrder", None, &mut outcome).await?;
    }
    Ok(outcome)
}

/// Moves the order to PAYMENT_PENDING; a payment that already has its
/// outcome (its own report gave up) is recorded at once, and one never
/// connected to the order (connectPayment's retries gave up half-way) is
/// connected now, so its context processes it.
async fn process_payment(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    run(&event, &order, "processPayment", None, &mut outcome).await?;
    let payment = client().get(link(&order, "payment")?).await?;
    if payment["status"] == PAYMENT_CREATED {
        run(&event, &payment, "connectOrder", None, &mut outcome).await?;
        return Ok(outcome);
    }
    if let Some(paid @ (PAYMENT_SUCCEEDED | PAYMENT_FAILED)) = payment["status"].as_str() {
        let body = json!({ "paymentStatus": paid });
        let order = client().refresh(&order).await?;
        // Keyed by the payment: the order's own processPayment above used the order's id.
        let key = idempotency_key(&event, "processPayment", &id_of(&payment));
        if client()
            .run(&order, "processPayment", Some(&body), &key)
            .await?
            .done()
        {
            outcome.ran.push("processPayment".to_owned());
        }
    }
    Ok(outcome)
}

/// The successful reservations of an order, as they are now.
async fn held_reservations(order: &Value) -> Result<Vec<Value>, HandlerError> {
    let mut held = Vec::new();
    for r in order["reservations"].as_array().into_iter().flatten() {
        if r["outcome"] == SUCCEEDED
            && let Some(href) = r["href"].as_str()
        {
            held.push(client().get(href).await?);
        }
    }
    Ok(held)
}

/// The compensation: releases every reservation that did succeed, then
/// fails the order — so a failed order never holds an item.
async fn compensate(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    if status(&order) != RESERVATION_FAILED && status(&order) != PAYMENT_FAILED {
        return Ok(outcome);
    }
    for reservation in held_reservations(&order).await? {
        run(&event, &reservation, "releaseInventory", None, &mut outcome).await?;
    }
    run(&event, &order, "completeOrder", None, &mut outcome).await?;
    Ok(outcome)
}

/// Paid: every reserved item becomes INVENTORY_RESERVED, then the order succeeds.
async fn fulfil(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(order) = order_of(&event).await? else {
        return Ok(outcome);
    };
    if status(&order) != PAYMENT_SUCCEEDED {
        return Ok(outcome);
    }
    for reservation in held_reservations(&order).await? {
        let item = client().get(link(&reservation, "inventory")?).await?;
        run(&event, &item, "reserve", None, &mut outcome).await?;
    }
    run(&event, &order, "completeOrder", None, &mut outcome).await?;
    Ok(outcome)
}

pub fn registry() -> Registry {
    Registry {
        functions: vec![
            Function::new("connectAccount", &[ORDER_CREATED], connect_account),
            Function::new("reserveInventory", &[ACCOUNT_CONNECTED], reserve_inventory),
            Function::new(
                "requestReservations",
                &[RESERVATION_PENDING],
                request_reservations,
            ),
            Function::new(
                "completeReservation",
                &[RESERVATION_ADDED],
                complete_reservation,
            ),
            Function::new("createPayment", &[RESERVATION_SUCCEEDED], create_payment),
            Function::new("connectPayment", &[PAYMENT_CREATED], connect_payment),
            Function::new("processPayment", &[PAYMENT_CONNECTED], process_payment),
            Function::new(
                "compensate",
                &[RESERVATION_FAILED, PAYMENT_FAILED],
                compensate,
            ),
            Function::new("fulfil", &[PAYMENT_SUCCEEDED], fulfil),
        ],
    }
}
