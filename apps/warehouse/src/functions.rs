//! The warehouse's action-mapped functions, driving each reservation:
//! once requested, connect it to its order and take an item; once it has an
//! outcome, report it to the order — or, when the order has moved on
//! without it (failed meanwhile), release the item it took.

use eventflow_runtime::{
    cloudevent::CloudEvent,
    consumer::HandlerError,
    functions::{Function, Outcome, Registry},
    hypermedia::{Ran, client, idempotency_key, link},
};
use serde_json::{Value, json};

use crate::reservation::{RESERVATION_FAILED, RESERVATION_REQUESTED, RESERVATION_SUCCEEDED};

/// How often the order is read again when it changed under the report.
const REPORT_ATTEMPTS: usize = 5;

async fn reservation_of(event: &CloudEvent) -> Result<Option<Value>, HandlerError> {
    client().subject_of_kind(event, "reservation").await
}

async fn run(
    event: &CloudEvent,
    resource: &Value,
    target: &str,
    command: &str,
    body: Option<&Value>,
    outcome: &mut Outcome,
) -> Result<Ran, HandlerError> {
    let key = idempotency_key(event, command, target);
    let ran = client().run(resource, command, body, &key).await?;
    outcome.record(command, &ran);
    Ok(ran)
}

/// RESERVATION_REQUESTED: connect to the order, then take an item.
async fn reserve(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(reservation) = reservation_of(&event).await? else {
        return Ok(outcome);
    };
    let id = reservation["reservationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reservation = match run(
        &event,
        &reservation,
        &id,
        "connectOrder",
        None,
        &mut outcome,
    )
    .await?
    {
        Ran::Done(after) => after,
        Ran::NotOffered => reservation,
    };
    run(
        &event,
        &reservation,
        &id,
        "connectInventory",
        None,
        &mut outcome,
    )
    .await?;
    Ok(outcome)
}

fn lists(order: &Value, reservation_id: &str) -> bool {
    order["reservations"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["reservationId"] == reservation_id))
}

/// RESERVATION_SUCCEEDED / RESERVATION_FAILED: tell the order. An order not
/// reserving yet is waited for (the event is retried, never dropped); an
/// order that decided without this reservation gets nothing from it: a
/// reservation that succeeded after its order failed releases itself.
async fn report(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(reservation) = reservation_of(&event).await? else {
        return Ok(outcome);
    };
    let id = reservation["reservationId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let succeeded = reservation["inventoryId"].is_string();
    let order_url = link(&reservation, "order")?;
    for _ in 0..REPORT_ATTEMPTS {
        let order = client().get(order_url).await?;
        if lists(&order, &id) {
            return Ok(outcome);
        }
        match order["status"].as_str().unwrap_or_default() {
            "RESERVATION_PENDING" => {
                let body = json!({
                    "reservationId": id,
                    "outcome": if succeeded { "SUCCEEDED" } else { "FAILED" },
                    "href": link(&reservation, "self")?,
                });
                let order_id = order["orderId"].as_str().unwrap_or_default();
                if run(
                    &event,
                    &order,
                    order_id,
                    "addReservation",
                    Some(&body),
                    &mut outcome,
                )
                .await?
                .done()
                {
                    return Ok(outcome);
                }
            }
            "ORDER_CREATED" | "ACCOUNT_CONNECTED" => {
                return Err(HandlerError::Failed(format!(
                    "order {} is not reserving inventory yet",
                    order["orderId"]
                )));
            }
            _ => {
                let current = client().refresh(&reservation).await?;
                run(
                    &event,
                    &current,
                    &id,
                    "releaseInventory",
                    None,
                    &mut outcome,
                )
                .await?;
                return Ok(outcome);
            }
        }
    }
    Err(HandlerError::Failed(format!(
        "order of reservation {id} kept changing"
    )))
}

pub fn registry() -> Registry {
    Registry {
        functions: vec![
            Function::new("reserve", &[RESERVATION_REQUESTED], reserve),
            Function::new(
                "reportReservation",
                &[RESERVATION_SUCCEEDED, RESERVATION_FAILED],
                report,
            ),
        ],
    }
}
