//! The inventory item aggregate: one unit of a product in a warehouse.
//! Available while RESERVATION_PENDING or INVENTORY_RELEASED; held by one
//! reservation while RESERVATION_CONNECTED; sold once INVENTORY_RESERVED.
//! Taking and releasing an item also change its reservation, atomically, so
//! they are served by [`crate::stock`]; `reserve` (sell) is a plain command.

use eventflow_runtime::{
    Aggregate, Creation, DomainError, NewEvent, RecordedEvent,
    aggregate::{AggregateSchemas, Lookup, forbidden},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const INVENTORY_CREATED: &str = "INVENTORY_CREATED";
pub const RESERVATION_PENDING: &str = "RESERVATION_PENDING";
pub const RESERVATION_CONNECTED: &str = "RESERVATION_CONNECTED";
pub const INVENTORY_RESERVED: &str = "INVENTORY_RESERVED";
pub const INVENTORY_RELEASED: &str = "INVENTORY_RELEASED";
pub const EVENT_TYPES: &[&str] = &[
    INVENTORY_CREATED,
    RESERVATION_PENDING,
    RESERVATION_CONNECTED,
    INVENTORY_RESERVED,
    INVENTORY_RELEASED,
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItem {
    pub inventory_id: String,
    pub warehouse_id: String,
    pub product_id: String,
    pub status: String,
    /// The reservation holding the item, while held or sold.
    #[serde(default)]
    pub reservation_id: Option<String>,
    pub version: i64,
    pub created_at: String,
    pub last_modified: String,
}

/// Body of `POST /v1/inventory` (refused: stock through the warehouse).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewItem {
    pub product_id: String,
}

impl InventoryItem {
    pub fn available(&self) -> bool {
        self.status == RESERVATION_PENDING || self.status == INVENTORY_RELEASED
    }

    pub fn held(&self) -> bool {
        self.status == RESERVATION_CONNECTED
    }

    /// The lookup key of the items of a product in a warehouse (the
    /// lookup group) that are available, or not: a reservation looks up
    /// only the available items of its product, the search counts them.
    pub fn stock_key(product_id: &str, available: bool) -> String {
        let availability = if available { "available" } else { "taken" };
        format!("{product_id}\u{1f}{availability}")
    }

    /// The events that stock a new item (it becomes available at once).
    pub fn stocked(id: &str, warehouse_id: &str, product_id: &str) -> Vec<NewEvent> {
        let ids =
            json!({ "inventoryId": id, "warehouseId": warehouse_id, "productId": product_id });
        vec![
            NewEvent::new(INVENTORY_CREATED, ids.clone()),
            NewEvent::new(RESERVATION_PENDING, ids),
        ]
    }

    pub fn event(&self, event_type: &str, reservation_id: &str) -> NewEvent {
        NewEvent::new(
            event_type,
            json!({ "inventoryId": self.inventory_id, "productId": self.product_id, "reservationId": reservation_id }),
        )
    }
}

impl Aggregate for InventoryItem {
    const KIND: &'static str = "inventory";
    const COLLECTION: &'static str = "inventory";
    const COMMANDS: &'static [&'static str] = &["reserve", "release"];
    type Create = NewItem;

    fn create(_id: &str, _input: NewItem) -> Result<Creation, DomainError> {
        Err(DomainError::invalid(
            "warehouseId",
            "items are stocked through POST /v1/warehouses/{id}/inventory",
        ))
    }

    fn apply(&mut self, e: &RecordedEvent) {
        let s = |k: &str| e.payload.get(k).and_then(Value::as_str).map(str::to_owned);
        match e.event_type.as_str() {
            INVENTORY_CREATED => {
                self.inventory_id = e.aggregate_id.clone();
                self.warehouse_id = s("warehouseId").unwrap_or_default();
                self.product_id = s("productId").unwrap_or_default();
                self.created_at = e.recorded_at.clone();
            }
            RESERVATION_CONNECTED => self.reservation_id = s("reservationId"),
            INVENTORY_RELEASED => self.reservation_id = None,
            _ => {}
        }
        self.status = e.event_type.clone();
        self.version = e.version;
        self.last_modified = e.recorded_at.clone();
    }

    fn commands(&self) -> Vec<&'static str> {
        if self.held() {
            vec!["reserve", "release"]
        } else {
            vec![]
        }
    }

    fn execute(&self, command: &str, _input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        match (command, &self.reservation_id) {
            ("reserve", Some(holder)) if self.held() => {
                Ok(vec![self.event(INVENTORY_RESERVED, holder)])
            }
            _ => Err(forbidden(self, command)),
        }
    }

    fn status(&self) -> String {
        self.status.clone()
    }

    fn lookup(&self) -> Option<Lookup> {
        Some(Lookup::new(
            &self.warehouse_id,
            Self::stock_key(&self.product_id, self.available()),
        ))
    }

    fn relations(&self, base: &str) -> Vec<(String, String)> {
        let mut links = vec![(
            "warehouse".to_owned(),
            format!("{base}/v1/warehouses/{}", self.warehouse_id),
        )];
        if let Some(r) = &self.reservation_id {
            links.push((
                "reservation".to_owned(),
                format!("{base}/v1/reservations/{r}"),
            ));
        }
        links
    }

    fn schemas() -> AggregateSchemas {
        let text = json!({ "type": "string" });
        AggregateSchemas {
            resource: json!({
                "type": "object",
                "required": ["inventoryId", "warehouseId", "productId", "status", "version", "createdAt", "lastModified"],
                "properties": {
                    "inventoryId": text, "warehouseId": text, "productId": text,
                    "status": { "type": "string", "enum": EVENT_TYPES },
                    "reservationId": { "type": ["string", "null"] },
                    "version": { "type": "integer" },
                    "createdAt": { "type": "string", "format": "date-time" },
                    "lastModified": { "type": "string", "format": "date-time" }
                }
            }),
            create: json!({ "type": "object", "required": ["productId"], "properties": { "productId": text } }),
            event_payload: json!({ "type": "object" }),
            event_types: EVENT_TYPES,
        }
    }
}
