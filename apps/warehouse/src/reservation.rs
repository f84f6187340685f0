//! The reservation aggregate: one unit of one line item of an order,
//! reserved in one warehouse. Created (REQUESTED) by the warehouse's
//! `reserveOrder`, connected to its order, then to one available inventory
//! item — or failed when none is left — and released when its order fails.
//! Taking and releasing an item write the item's stream too, atomically, so
//! `connectInventory` and `releaseInventory` are served by [`crate::stock`].

use eventflow_runtime::{
    Aggregate, Creation, DomainError, NewEvent, RecordedEvent,
    aggregate::{AggregateSchemas, forbidden},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const RESERVATION_CREATED: &str = "RESERVATION_CREATED";
pub const RESERVATION_REQUESTED: &str = "RESERVATION_REQUESTED";
pub const ORDER_CONNECTED: &str = "ORDER_CONNECTED";
pub const RESERVATION_PENDING: &str = "RESERVATION_PENDING";
pub const INVENTORY_CONNECTED: &str = "INVENTORY_CONNECTED";
pub const RESERVATION_SUCCEEDED: &str = "RESERVATION_SUCCEEDED";
pub const RESERVATION_FAILED: &str = "RESERVATION_FAILED";
pub const RESERVATION_RELEASED: &str = "RESERVATION_RELEASED";
pub const EVENT_TYPES: &[&str] = &[
    RESERVATION_CREATED,
    RESERVATION_REQUESTED,
    ORDER_CONNECTED,
    RESERVATION_PENDING,
    INVENTORY_CONNECTED,
    RESERVATION_SUCCEEDED,
    RESERVATION_FAILED,
    RESERVATION_RELEASED,
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub reservation_id: String,
    pub order_id: String,
    pub order_href: String,
    pub warehouse_id: String,
    pub product_id: String,
    /// The item it took, once INVENTORY_CONNECTED.
    #[serde(default)]
    pub inventory_id: Option<String>,
    pub status: String,
    #[serde(default)]
    pub failure_reason: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub last_modified: String,
}

/// Body of `POST /v1/reservations` (refused: the warehouse's reserveOrder creates them).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewReservation {
    pub order_id: String,
}

impl Reservation {
    /// The events that create a requested reservation.
    pub fn requested(
        id: &str,
        order_id: &str,
        order_href: &str,
        warehouse_id: &str,
        product_id: &str,
    ) -> Vec<NewEvent> {
        let ids = json!({ "reservationId": id, "orderId": order_id });
        vec![
            NewEvent::new(
                RESERVATION_CREATED,
                json!({ "reservationId": id, "orderId": order_id, "orderHref": order_href,
                        "warehouseId": warehouse_id, "productId": product_id }),
            ),
            NewEvent::new(RESERVATION_REQUESTED, ids),
        ]
    }

    /// True while it holds an item that is not sold.
    pub fn holds(&self) -> bool {
        self.inventory_id.is_some()
            && (self.status == INVENTORY_CONNECTED || self.status == RESERVATION_SUCCEEDED)
    }

    pub fn event(&self, event_type: &str, extra: Value) -> NewEvent {
        let mut payload = json!({ "reservationId": self.reservation_id, "orderId": self.order_id,
                                  "productId": self.product_id });
        if let (Some(map), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            map.extend(extra);
        }
        NewEvent::new(event_type, payload)
    }
}

impl Aggregate for Reservation {
    const KIND: &'static str = "reservation";
    const COLLECTION: &'static str = "reservations";
    const COMMANDS: &'static [&'static str] =
        &["connectOrder", "connectInventory", "releaseInventory"];
    type Create = NewReservation;

    fn create(_id: &str, _input: NewReservation) -> Result<Creation, DomainError> {
        Err(DomainError::invalid(
            "orderId",
            "reservations are created by POST /v1/warehouses/{id}/commands/reserveOrder",
        ))
    }

    fn apply(&mut self, e: &RecordedEvent) {
        let s = |k: &str| e.payload.get(k).and_then(Value::as_str).map(str::to_owned);
        match e.event_type.as_str() {
            RESERVATION_CREATED => {
                self.reservation_id = e.aggregate_id.clone();
                self.order_id = s("orderId").unwrap_or_default();
                self.order_href = s("orderHref").unwrap_or_default();
                self.warehouse_id = s("warehouseId").unwrap_or_default();
                self.product_id = s("productId").unwrap_or_default();
                self.created_at = e.recorded_at.clone();
            }
            INVENTORY_CONNECTED => self.inventory_id = s("inventoryId"),
            RESERVATION_FAILED => self.failure_reason = s("reason"),
            _ => {}
        }
        self.status = e.event_type.clone();
        self.version = e.version;
        self.last_modified = e.recorded_at.clone();
    }

    fn commands(&self) -> Vec<&'static str> {
        match self.status.as_str() {
            RESERVATION_REQUESTED => vec!["connectOrder"],
            RESERVATION_PENDING => vec!["connectInventory"],
            _ if self.holds() => vec!["releaseInventory"],
            _ => vec![],
        }
    }

    fn execute(&self, command: &str, _input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        match command {
            "connectOrder" if self.commands().contains(&command) => Ok(vec![
                self.event(ORDER_CONNECTED, json!({ "orderHref": self.order_href })),
                self.event(RESERVATION_PENDING, json!({})),
            ]),
            _ => Err(forbidden(self, command)),
        }
    }

    fn status(&self) -> String {
        self.status.clone()
    }

    /// Until it has an outcome it waits for its own worker, whose function
    /// (on RESERVATION_REQUESTED) connects it to its order and takes an
    /// item. With an outcome it waits for nothing of its own: an outcome
    /// whose report was lost is pulled by its order.
    fn in_flight(&self) -> Option<&'static str> {
        match self.status.as_str() {
            RESERVATION_REQUESTED | ORDER_CONNECTED | RESERVATION_PENDING => {
                Some(RESERVATION_REQUESTED)
            }
            _ => None,
        }
    }

    fn relations(&self, base: &str) -> Vec<(String, String)> {
        let mut links = vec![
            ("order".to_owned(), self.order_href.clone()),
            (
                "warehouse".to_owned(),
                format!("{base}/v1/warehouses/{}", self.warehouse_id),
            ),
        ];
        if let Some(item) = &self.inventory_id {
            links.push((
                "inventory".to_owned(),
                format!("{base}/v1/inventory/{item}"),
            ));
        }
        links
    }

    fn schemas() -> AggregateSchemas {
        let text = json!({ "type": "string" });
        AggregateSchemas {
            resource: json!({
                "type": "object",
                "required": ["reservationId", "orderId", "orderHref", "warehouseId", "productId", "status", "version", "createdAt", "lastModified"],
                "properties": {
                    "reservationId": text, "orderId": text, "orderHref": text, "warehouseId": text, "productId": text,
                    "inventoryId": { "type": ["string", "null"] },
                    "status": { "type": "string", "enum": EVENT_TYPES },
                    "failureReason": { "type": ["string", "null"] },
                    "version": { "type": "integer" },
                    "createdAt": { "type": "string", "format": "date-time" },
                    "lastModified": { "type": "string", "format": "date-time" }
                }
            }),
            create: json!({ "type": "object", "required": ["orderId"], "properties": { "orderId": text } }),
            event_payload: json!({ "type": "object" }),
            event_types: EVENT_TYPES,
        }
    }
}
