//! The order aggregate (DOMAIN.md, "Order (the saga)"): its fields, its
//! state machine and the events that drive it. Pure: every decision is made
//! from the state rebuilt from events. The workers that move an order from
//! one state to the next live in [`crate::functions`].

use eventflow_runtime::{
    Aggregate, Creation, DomainError, NewEvent, RecordedEvent,
    aggregate::{AggregateSchemas, Lookup, forbidden},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::{
    ACCOUNT_CONNECTED, FAILED, ORDER_CREATED, ORDER_FAILED, ORDER_SUCCEEDED, PAYMENT_CONNECTED,
    PAYMENT_CREATED, PAYMENT_FAILED, PAYMENT_PENDING, PAYMENT_SUCCEEDED, RESERVATION_ADDED,
    RESERVATION_FAILED, RESERVATION_PENDING, RESERVATION_SUCCEEDED, SUCCEEDED,
};

const MAX_LINE_ITEMS: usize = 50;
const MAX_QUANTITY: u32 = 100;
const MAX_TEXT: usize = 200;
const DEFAULT_PAYMENT_METHOD: &str = "CARD";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineItem {
    pub name: String,
    pub product_id: String,
    pub quantity: u32,
    pub price: f64,
    #[serde(default)]
    pub tax: f64,
}

/// One reservation the warehouse made for this order, with its outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRef {
    pub reservation_id: String,
    pub outcome: String,
    pub href: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: String,
    pub account_id: String,
    #[serde(default)]
    pub payment_id: Option<String>,
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub shipping_address: Value,
    pub payment_method: String,
    pub total: f64,
    pub status: String,
    /// Units to reserve: one reservation per unit.
    #[serde(default)]
    pub expected_reservations: u32,
    #[serde(default)]
    pub reservations: Vec<ReservationRef>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub account_href: Option<String>,
    #[serde(default)]
    pub payment_href: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub last_modified: String,
}

/// Body of `POST /v1/orders`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    pub account_id: String,
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub shipping_address: Value,
    #[serde(default)]
    pub payment_method: Option<String>,
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn text(field: &str, value: &str) -> Result<String, DomainError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > MAX_TEXT {
        return Err(DomainError::invalid(field, "must be 1 to 200 characters"));
    }
    Ok(v.to_owned())
}

fn amount(field: &str, value: f64) -> Result<f64, DomainError> {
    if !value.is_finite() || !(0.0..=1_000_000.0).contains(&value) {
        return Err(DomainError::invalid(field, "must be from 0 to 1000000"));
    }
    Ok(cents(value))
}

fn check_line_items(items: &[LineItem]) -> Result<Vec<LineItem>, DomainError> {
    if items.is_empty() || items.len() > MAX_LINE_ITEMS {
        return Err(DomainError::invalid("lineItems", "must hold 1 to 50 items"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let f = |name: &str| format!("lineItems[{i}].{name}");
            if item.quantity == 0 || item.quantity > MAX_QUANTITY {
                return Err(DomainError::invalid(&f("quantity"), "must be 1 to 100"));
            }
            Ok(LineItem {
                name: text(&f("name"), &item.name)?,
                product_id: text(&f("productId"), &item.product_id)?,
                quantity: item.quantity,
                price: amount(&f("price"), item.price)?,
                tax: amount(&f("tax"), item.tax)?,
            })
        })
        .collect()
}

/// Σ (price + tax) × quantity, in cents.
pub fn total(items: &[LineItem]) -> f64 {
    cents(
        items
            .iter()
            .map(|i| (i.price + i.tax) * f64::from(i.quantity))
            .sum(),
    )
}

fn input_str<'a>(input: &'a Value, field: &str) -> Option<&'a str> {
    input
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required<'a>(input: &'a Value, field: &str) -> Result<&'a str, DomainError> {
    input_str(input, field).ok_or_else(|| DomainError::invalid(field, "is required"))
}

impl Order {
    pub fn is_final(&self) -> bool {
        self.status == ORDER_SUCCEEDED || self.status == ORDER_FAILED
    }

    fn has_reservation(&self, id: &str) -> bool {
        self.reservations.iter().any(|r| r.reservation_id == id)
    }

    fn all_reservations_in(&self) -> bool {
        self.reservations.len() >= self.expected_reservations as usize
    }

    fn event(&self, event_type: &str, mut payload: Value) -> NewEvent {
        if let Some(map) = payload.as_object_mut() {
            map.insert("orderId".into(), json!(self.order_id));
        }
        NewEvent::new(event_type, payload)
    }

    fn add_reservation(&self, input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        let id = required(input, "reservationId")?;
        let outcome = required(input, "outcome")?;
        let href = required(input, "href")?;
        if outcome != SUCCEEDED && outcome != FAILED {
            return Err(DomainError::invalid(
                "outcome",
                "must be SUCCEEDED or FAILED",
            ));
        }
        // Reservation ids are `<orderId>-<line>-<unit>`: another order's
        // reservation can never fill one of this order's places.
        if !id.starts_with(&format!("{}-", self.order_id)) {
            return Err(DomainError::invalid(
                "reservationId",
                "is not one of this order's",
            ));
        }
        if self.has_reservation(id) || self.all_reservations_in() {
            return Err(forbidden(self, "addReservation"));
        }
        Ok(vec![self.event(
            RESERVATION_ADDED,
            json!({ "reservationId": id, "outcome": outcome, "href": href }),
        )])
    }

    fn complete_reservation(&self, input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        if let Some(reason) = input_str(input, "failure") {
            return Ok(vec![
                self.event(RESERVATION_FAILED, json!({ "reason": reason })),
            ]);
        }
        if !self.all_reservations_in() {
            return Err(DomainError::Forbidden {
                kind: Self::KIND,
                command: "completeReservation".into(),
                state: format!(
                    "{} with {} of {} reservation outcomes",
                    self.status,
                    self.reservations.len(),
                    self.expected_reservations
                ),
            });
        }
        let failed = self
            .reservations
            .iter()
            .filter(|r| r.outcome != SUCCEEDED)
            .count();
        Ok(vec![if failed == 0 {
            self.event(RESERVATION_SUCCEEDED, json!({}))
        } else {
            self.event(
                RESERVATION_FAILED,
                json!({ "reason": format!("{failed} of {} units out of stock", self.reservations.len()) }),
            )
        }])
    }

    fn process_payment(&self, input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        let outcome = match input_str(input, "paymentStatus") {
            None => None,
            Some(s @ (PAYMENT_SUCCEEDED | PAYMENT_FAILED)) => Some(s),
            Some(_) => {
                return Err(DomainError::invalid(
                    "paymentStatus",
                    "must be PAYMENT_SUCCEEDED or PAYMENT_FAILED",
                ));
            }
        };
        let mut events = Vec::new();
        if self.status == PAYMENT_CONNECTED {
            events.push(self.event(PAYMENT_PENDING, json!({})));
        } else if outcome.is_none() {
            // PAYMENT_PENDING without an outcome: nothing to do until the
            // payment reports one.
            return Err(forbidden(self, "processPayment"));
        }
        if let Some(outcome) = outcome {
            events.push(self.event(outcome, json!({ "paymentId": self.payment_id })));
        }
        Ok(events)
    }
}

impl Aggregate for Order {
    const KIND: &'static str = "order";
    const COLLECTION: &'static str = "orders";
    const COMMANDS: &'static [&'static str] = &[
        "connectAccount",
        "reserveInventory",
        "addReservation",
        "completeReservation",
        "createPayment",
        "connectPayment",
        "processPayment",
        "completeOrder",
    ];
    type Create = NewOrder;

    fn create(id: &str, input: NewOrder) -> Result<Creation, DomainError> {
        let account_id = text("accountId", &input.account_id)?;
        let line_items = check_line_items(&input.line_items)?;
        let payment_method = match input.payment_method {
            Some(m) => text("paymentMethod", &m)?,
            None => DEFAULT_PAYMENT_METHOD.to_owned(),
        };
        if input.shipping_address.to_string().len() > 2_000 {
            return Err(DomainError::invalid("shippingAddress", "is too long"));
        }
        let payload = json!({
            "orderId": id, "accountId": account_id, "lineItems": line_items,
            "shippingAddress": input.shipping_address, "paymentMethod": payment_method,
            "total": total(&line_items),
        });
        Ok(Creation {
            events: vec![NewEvent::new(ORDER_CREATED, payload)],
            claims: vec![],
        })
    }

    fn apply(&mut self, e: &RecordedEvent) {
        let p = &e.payload;
        let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        match e.event_type.as_str() {
            ORDER_CREATED => {
                self.order_id = e.aggregate_id.clone();
                self.account_id = s("accountId").unwrap_or_default();
                self.line_items =
                    serde_json::from_value(p["lineItems"].clone()).unwrap_or_default();
                self.shipping_address = p.get("shippingAddress").cloned().unwrap_or(Value::Null);
                self.payment_method = s("paymentMethod").unwrap_or_default();
                self.total = p.get("total").and_then(Value::as_f64).unwrap_or_default();
                self.created_at = e.recorded_at.clone();
            }
            ACCOUNT_CONNECTED => {
                self.account_id = s("accountId").unwrap_or_else(|| self.account_id.clone());
                self.account_href = s("accountHref");
            }
            RESERVATION_PENDING => {
                self.expected_reservations = p
                    .get("expectedReservations")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or_default();
            }
            RESERVATION_ADDED => self.reservations.push(ReservationRef {
                reservation_id: s("reservationId").unwrap_or_default(),
                outcome: s("outcome").unwrap_or_default(),
                href: s("href").unwrap_or_default(),
            }),
            PAYMENT_CREATED => {
                self.payment_id = s("paymentId");
                self.payment_href = s("paymentHref");
            }
            RESERVATION_FAILED | ORDER_FAILED => {
                if let Some(reason) = s("reason") {
                    self.failure_reason = Some(reason);
                }
            }
            PAYMENT_FAILED => self.failure_reason = Some("payment declined".into()),
            _ => {}
        }
        if e.event_type != RESERVATION_ADDED {
            self.status = e.event_type.clone();
        }
        self.version = e.version;
        self.last_modified = e.recorded_at.clone();
    }

    fn commands(&self) -> Vec<&'static str> {
        match self.status.as_str() {
            ORDER_CREATED => vec!["connectAccount"],
            ACCOUNT_CONNECTED => vec!["reserveInventory"],
            RESERVATION_PENDING if self.all_reservations_in() => vec!["completeReservation"],
            RESERVATION_PENDING => vec!["addReservation", "completeReservation"],
            RESERVATION_SUCCEEDED => vec!["createPayment"],
            PAYMENT_CREATED => vec!["connectPayment"],
            PAYMENT_CONNECTED | PAYMENT_PENDING => vec!["processPayment"],
            RESERVATION_FAILED | PAYMENT_SUCCEEDED | PAYMENT_FAILED => vec!["completeOrder"],
            _ => vec![],
        }
    }

    fn execute(&self, command: &str, input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        if !self.commands().contains(&command) {
            return Err(forbidden(self, command));
        }
        match command {
            "connectAccount" => {
                let account_id = input_str(input, "accountId").unwrap_or(&self.account_id);
                let href = input_str(input, "accountHref");
                Ok(vec![self.event(
                    ACCOUNT_CONNECTED,
                    json!({ "accountId": account_id, "accountHref": href }),
                )])
            }
            "reserveInventory" => {
                let units: u32 = self.line_items.iter().map(|i| i.quantity).sum();
                Ok(vec![self.event(
                    RESERVATION_PENDING,
                    json!({ "expectedReservations": units }),
                )])
            }
            "addReservation" => self.add_reservation(input),
            "completeReservation" => self.complete_reservation(input),
            "createPayment" => {
                let id = required(input, "paymentId")?;
                let href = required(input, "paymentHref")?;
                Ok(vec![self.event(
                    PAYMENT_CREATED,
                    json!({ "paymentId": id, "paymentHref": href }),
                )])
            }
            "connectPayment" => {
                Ok(vec![self.event(
                    PAYMENT_CONNECTED,
                    json!({ "paymentId": self.payment_id }),
                )])
            }
            "processPayment" => self.process_payment(input),
            "completeOrder" => Ok(vec![if self.status == PAYMENT_SUCCEEDED {
                self.event(ORDER_SUCCEEDED, json!({}))
            } else {
                self.event(ORDER_FAILED, json!({ "reason": self.failure_reason }))
            }]),
            _ => Err(forbidden(self, command)),
        }
    }

    fn status(&self) -> String {
        self.status.clone()
    }

    /// Every status but the final ones waits for the saga: the event whose
    /// function takes the next step — PAYMENT_PENDING, whose outcome the
    /// payment context reports, by PAYMENT_CONNECTED's function, which also
    /// pulls an outcome already decided (and connects a payment never
    /// connected).
    fn in_flight(&self) -> Option<&'static str> {
        match self.status.as_str() {
            ORDER_CREATED => Some(ORDER_CREATED),
            ACCOUNT_CONNECTED => Some(ACCOUNT_CONNECTED),
            RESERVATION_PENDING => Some(RESERVATION_PENDING),
            RESERVATION_SUCCEEDED => Some(RESERVATION_SUCCEEDED),
            RESERVATION_FAILED => Some(RESERVATION_FAILED),
            PAYMENT_CREATED => Some(PAYMENT_CREATED),
            PAYMENT_CONNECTED | PAYMENT_PENDING => Some(PAYMENT_CONNECTED),
            PAYMENT_SUCCEEDED => Some(PAYMENT_SUCCEEDED),
            PAYMENT_FAILED => Some(PAYMENT_FAILED),
            _ => None,
        }
    }

    /// Found by account: `findByAccount` reads only the account's orders.
    fn lookup(&self) -> Option<Lookup> {
        Some(Lookup::new(&self.account_id, "order"))
    }

    fn relations(&self, _base: &str) -> Vec<(String, String)> {
        let mut links = Vec::new();
        if let Some(href) = &self.account_href {
            links.push(("account".to_owned(), href.clone()));
        }
        if let Some(href) = &self.payment_href {
            links.push(("payment".to_owned(), href.clone()));
        }
        links
    }

    fn schemas() -> AggregateSchemas {
        crate::schemas::order()
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
