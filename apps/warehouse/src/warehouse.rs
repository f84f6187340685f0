//! The warehouse aggregate: a place with an address that stocks inventory
//! items and reserves orders. Stocking and `reserveOrder` write other
//! aggregates' streams (items, reservations), so they are served by
//! [`crate::stock`]; the warehouse's own stream holds its creation.

use eventflow_runtime::{
    Aggregate, Creation, DomainError, NewEvent, RecordedEvent,
    aggregate::{AggregateSchemas, forbidden},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const WAREHOUSE_CREATED: &str = "WAREHOUSE_CREATED";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warehouse {
    pub warehouse_id: String,
    pub address: Value,
    pub status: String,
    pub version: i64,
    pub created_at: String,
    pub last_modified: String,
}

/// Body of `POST /v1/warehouses`.
#[derive(Clone, Debug, Deserialize)]
pub struct NewWarehouse {
    pub address: Value,
}

impl Aggregate for Warehouse {
    const KIND: &'static str = "warehouse";
    const COLLECTION: &'static str = "warehouses";
    const COMMANDS: &'static [&'static str] = &["reserveOrder"];
    type Create = NewWarehouse;

    fn create(id: &str, input: NewWarehouse) -> Result<Creation, DomainError> {
        let size = input.address.to_string().len();
        if input.address.is_null() || size > 2_000 {
            return Err(DomainError::invalid(
                "address",
                "must be a string or an object under 2000 bytes",
            ));
        }
        Ok(Creation {
            events: vec![NewEvent::new(
                WAREHOUSE_CREATED,
                json!({ "warehouseId": id, "address": input.address }),
            )],
            claims: vec![],
        })
    }

    fn apply(&mut self, e: &RecordedEvent) {
        if e.event_type == WAREHOUSE_CREATED {
            self.warehouse_id = e.aggregate_id.clone();
            self.address = e.payload.get("address").cloned().unwrap_or(Value::Null);
            self.created_at = e.recorded_at.clone();
        }
        self.status = e.event_type.clone();
        self.version = e.version;
        self.last_modified = e.recorded_at.clone();
    }

    fn commands(&self) -> Vec<&'static str> {
        vec!["reserveOrder"]
    }

    fn execute(&self, command: &str, _input: &Value) -> Result<Vec<NewEvent>, DomainError> {
        // reserveOrder creates reservations: served by `stock`, never here.
        Err(forbidden(self, command))
    }

    fn status(&self) -> String {
        self.status.clone()
    }

    fn relations(&self, base: &str) -> Vec<(String, String)> {
        vec![(
            "inventory".to_owned(),
            format!("{base}/v1/warehouses/{}/inventory", self.warehouse_id),
        )]
    }

    fn schemas() -> AggregateSchemas {
        let text = json!({ "type": "string" });
        AggregateSchemas {
            resource: json!({
                "type": "object",
                "required": ["warehouseId", "address", "status", "version", "createdAt", "lastModified"],
                "properties": {
                    "warehouseId": text, "address": {}, "status": { "type": "string", "enum": [WAREHOUSE_CREATED] },
                    "version": { "type": "integer" },
                    "createdAt": { "type": "string", "format": "date-time" },
                    "lastModified": { "type": "string", "format": "date-time" }
                }
            }),
            create: json!({ "type": "object", "required": ["address"], "properties": { "address": {} } }),
            event_payload: json!({ "type": "object" }),
            event_types: &[WAREHOUSE_CREATED],
        }
    }
}
