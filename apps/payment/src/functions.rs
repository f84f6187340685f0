//! The payment context's action-mapped functions: process a payment once
//! it is connected to its order, then report the outcome to the order by
//! following the payment's `order` link.

use eventflow_runtime::{
    cloudevent::CloudEvent,
    consumer::HandlerError,
    functions::{Function, Outcome, Registry},
    hypermedia::{client, idempotency_key, link},
};
use serde_json::{Value, json};

use crate::payment::{ORDER_CONNECTED, PAYMENT_FAILED, PAYMENT_SUCCEEDED};

async fn payment_of(event: &CloudEvent) -> Result<Option<Value>, HandlerError> {
    client().subject_of_kind(event, "payment").await
}

async fn process_payment(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(payment) = payment_of(&event).await? else {
        return Ok(outcome);
    };
    let id = payment["paymentId"].as_str().unwrap_or_default();
    let key = idempotency_key(&event, "processPayment", id);
    let ran = client().run(&payment, "processPayment", None, &key).await?;
    outcome.record("processPayment", &ran);
    Ok(outcome)
}

/// Tells the order how its payment ended. An order that has not reached
/// PAYMENT_CONNECTED yet cannot take it: the event is retried, never dropped.
async fn report_payment(event: CloudEvent) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    let Some(payment) = payment_of(&event).await? else {
        return Ok(outcome);
    };
    let order = client().get(link(&payment, "order")?).await?;
    match order["status"].as_str().unwrap_or_default() {
        "PAYMENT_CONNECTED" | "PAYMENT_PENDING" => {
            let body = json!({ "paymentStatus": payment["status"] });
            let key = idempotency_key(
                &event,
                "processPayment",
                order["orderId"].as_str().unwrap_or_default(),
            );
            let ran = client()
                .run(&order, "processPayment", Some(&body), &key)
                .await?;
            outcome.record("processPayment", &ran);
            Ok(outcome)
        }
        "ORDER_CREATED"
        | "ACCOUNT_CONNECTED"
        | "RESERVATION_PENDING"
        | "RESERVATION_SUCCEEDED"
        | "PAYMENT_CREATED" => Err(HandlerError::Failed(format!(
            "order {} is not connected to its payment yet",
            order["orderId"]
        ))),
        _ => Ok(outcome),
    }
}

pub fn registry() -> Registry {
    Registry {
        functions: vec![
            Function::new("processPayment", &[ORDER_CONNECTED], process_payment),
            Function::new(
                "reportPayment",
                &[PAYMENT_SUCCEEDED, PAYMENT_FAILED],
                report_payment,
            ),
        ],
    }
}
