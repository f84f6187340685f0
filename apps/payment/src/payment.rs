//! The payment aggregate (DOMAIN.md, "Payment"): created for an order's
//! total, connected to the order, then processed — succeeding, or failing
//! on purpose when the payment method is `DECLINED` or the amount is over
//! [`PAYMENT_LIMIT`], so the saga's compensation paths can be exercised.

use eventflow_runtime::{
    Aggregate, Creation, DomainError, NewEvent, RecordedEvent,
    aggregate::{AggregateSchemas, forbidden},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const PAYMENT_CREATED: &str = "PAYMENT_CREATED";
pub const ORDER_CONNECTED: &str = "ORDER_CONNECTED";
pub const PAYMENT_PENDING: &str = "PAYMENT_PENDING";
pub const PAYMENT_PROCESSED: &str = "PAYMENT_PROCESSED";
pub const PAYMENT_SUCCEEDED: &str = "PAYMENT_SUCCEEDED";
pub const PAYMENT_FAILED: &str = "PAYMENT_FAILED";
pub const EVENT_TYPES: &[&str] = &[
    PAYMENT_CREATED,
    ORDER_CONNECTED,
    PAYMENT_PENDING,
    PAYMENT_PROCESSED,
    PAYMENT_SUCCEEDED,
    PAYMENT_FAILED,
];

/// The payment method that is always declined.
pub const DECLINED_METHOD: &str = "DECLINED";
/// Amounts above this are declined.
pub const PAYMENT_LIMIT: f64 = 5_000.0;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: String,
    pub order_id: String,
    pub amount: f64,
    pub payment_method: String,
    pub status: String,
    #[serde(default)]
    pub order_href: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub last_modified: String,
}

/// Body of `POST /v1/payments`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPayment {
    pub order_id: String,
    pub amount: f64,
    pub payment_method: String,
    /// The order this pays for (a link into the order context).
    pub order_href: String,
}

fn text(field: &str, value: &str, max: usize) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() || v.len() > max {
        return Err(DomainError::invalid(
            field,
            &format!("must be 1 to {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

impl Payment {
    /// Why the payment is declined, if it is.
    pub fn decline_reason(&self) -> Option<String> {
        if self.payment_method.eq_ignore_ascii_case(DECLINED_METHOD) {
            Some(format!("payment method {DECLINED_METHOD} is declined"))
        } else if self.amount > PAYMENT_LIMIT {
            Some(format!(
                "amount {} is over the limit of {PAYMENT_LIMIT}",
                self.amount
            ))
        } else {
            None
        }
    }
}

impl Aggregate for Payment {
    const KIND: &'static str = "payment";
    const COLLECTION: &'static str = "payments";
    const COMMANDS: &'static [&'static str] = &["connectOrder", "processPayment"];
    type Create = NewPayment;

    fn create(id: &str, input: NewPayment) -> Result<Creation, DomainError> {
        let order_id = text("orderId", &input.order_id, 200)?;
        let method = text("paymentMethod", &input.payment_method, 200)?;
        let order_href = text("orderHref", &input.order_href, 2_000)?;
        if !order_href.starts_with("http://") && !order_href.starts_with("https://") {
            return Err(DomainError::invalid(
                "orderHref",
                "must be an absolute http(s) URL",
            ));
        }
        if !input.amount.is_finite() || !(0.0..=1e9).contains(&input.amount) {
            return Err(DomainError::invalid(
                "amount",
                "must be from 0 to 1000000000",
            ));
        }
        let payload = json!({
            "paymentId": id, "orderId": order_id, "amount": input.amount,
            "paymentMethod": method, "orderHref": order_href,
        });
        Ok(Creation {
            events: vec![NewEvent::new(PAYMENT_CREATED, payload)],
            claims: vec![],
        })
    }

    fn apply(&mut self, e: &RecordedEvent) {
        let p = &e.payload;
        let s = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match e.event_type.as_str() {
            PAYMENT_CREATED => {
                self.payment_id = e.aggregate_id.clone();
                self.order_id = s("orderId");
                self.amount = p.get("amount").and_then(Value::as_f64).unwrap_or_default();
                self.payment_method = s("paymentMethod");
                self.order_href = s("orderHref");
                self.created_at = e.recorded_at.clone();
            }
            PAYMENT_FAILED => self.failure_reason = Some(s("reason")),
            _ => {}
        }
        self.status = e.event_type.clone();
        self.version = e.version;
        self.last_modified = e.recorded_at.clone();
    }

    fn commands(&self) -> Vec<&'static str> {
        match self.status.as_str() {
            PAYMENT_CREATED => vec!["connectOrder"],
            ORDER_CONNECTED => vec!["processPayment"],
            _ => vec![],
        }
    }

    fn execute(&self, command: &str, _input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        if !self.commands().contains(&command) {
            return Err(forbidden(self, command));
        }
        let ids = json!({ "paymentId": self.payment_id, "orderId": self.order_id });
        match command {
            "connectOrder" => Ok(vec![NewEvent::new(ORDER_CONNECTED, ids)]),
            "processPayment" => {
                let outcome = match self.decline_reason() {
                    None => NewEvent::new(PAYMENT_SUCCEEDED, ids.clone()),
                    Some(reason) => NewEvent::new(
                        PAYMENT_FAILED,
                        json!({ "paymentId": self.payment_id, "orderId": self.order_id, "reason": reason }),
                    ),
                };
                Ok(vec![
                    NewEvent::new(PAYMENT_PENDING, ids.clone()),
                    NewEvent::new(PAYMENT_PROCESSED, ids),
                    outcome,
                ])
            }
            _ => Err(forbidden(self, command)),
        }
    }

    fn status(&self) -> String {
        self.status.clone()
    }

    fn relations(&self, _base: &str) -> Vec<(String, String)> {
        vec![("order".to_owned(), self.order_href.clone())]
    }

    /// Connected to its order, it waits for its own worker to process it.
    /// Created, it waits for the order's worker (the order's own wait
    /// re-drives that); decided, it has nothing left to do — an outcome
    /// whose report was lost is pulled by the order.
    fn in_flight(&self) -> Option<&'static str> {
        (self.status == ORDER_CONNECTED).then_some(ORDER_CONNECTED)
    }

    fn schemas() -> AggregateSchemas {
        let text = json!({ "type": "string" });
        AggregateSchemas {
            resource: json!({
                "type": "object",
                "required": ["paymentId", "orderId", "amount", "paymentMethod", "status", "orderHref", "version", "createdAt", "lastModified"],
                "properties": {
                    "paymentId": text, "orderId": text, "amount": { "type": "number" },
                    "paymentMethod": text, "orderHref": text,
                    "status": { "type": "string", "enum": EVENT_TYPES },
                    "failureReason": { "type": ["string", "null"] },
                    "version": { "type": "integer" },
                    "createdAt": { "type": "string", "format": "date-time" },
                    "lastModified": { "type": "string", "format": "date-time" }
                }
            }),
            create: json!({
                "type": "object",
                "required": ["orderId", "amount", "paymentMethod", "orderHref"],
                "properties": {
                    "orderId": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S" },
                    "amount": { "type": "number", "minimum": 0, "maximum": 1_000_000_000 },
                    "paymentMethod": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S",
                        "description": "DECLINED is always declined; so is an amount over 5000." },
                    "orderHref": { "type": "string", "format": "uri", "pattern": "^https?://" }
                }
            }),
            event_payload: json!({ "type": "object" }),
            event_types: EVENT_TYPES,
        }
    }
}

#[cfg(test)]
mod tests {
    use eventflow_runtime::aggregate::replay;

    use super::*;

    fn processed(method: &str, amount: f64) -> Payment {
        let input = NewPayment {
            order_id: "o1".into(),
            amount,
            payment_method: method.into(),
            order_href: "http://order/v1/orders/o1".into(),
        };
        let mut events: Vec<RecordedEvent> = Payment::create("p1", input)
            .unwrap()
            .events
            .iter()
            .map(|e| e.at_version("payment", "p1", 1))
            .collect();
        for command in ["connectOrder", "processPayment"] {
            let state: Payment = replay(&events).unwrap();
            for e in state.execute(command, &Value::Null).unwrap() {
                let v = events.len() as i64 + 1;
                events.push(e.at_version("payment", "p1", v));
            }
        }
        replay(&events).unwrap()
    }

    #[test]
    fn a_card_payment_within_the_limit_succeeds() {
        let p = processed("CARD", 120.0);
        assert_eq!(p.status, PAYMENT_SUCCEEDED);
        assert_eq!(
            p.version, 5,
            "created, connected, pending, processed, succeeded"
        );
        assert!(p.commands().is_empty());
    }

    #[test]
    fn the_declined_method_or_an_amount_over_the_limit_fails_on_purpose() {
        assert_eq!(processed("DECLINED", 1.0).status, PAYMENT_FAILED);
        let over = processed("CARD", PAYMENT_LIMIT + 0.01);
        assert_eq!(over.status, PAYMENT_FAILED);
        assert!(over.failure_reason.unwrap().contains("over the limit"));
    }

    #[test]
    fn a_payment_is_processed_only_once_connected() {
        let input = NewPayment {
            order_id: "o1".into(),
            amount: 1.0,
            payment_method: "CARD".into(),
            order_href: "http://order/v1/orders/o1".into(),
        };
        let events: Vec<RecordedEvent> = Payment::create("p1", input)
            .unwrap()
            .events
            .iter()
            .map(|e| e.at_version("payment", "p1", 1))
            .collect();
        let p: Payment = replay(&events).unwrap();
        assert!(matches!(
            p.execute("processPayment", &Value::Null),
            Err(DomainError::Forbidden { .. })
        ));
    }
}
