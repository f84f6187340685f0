//! The order's OpenAPI schemas (resource, create body, event payload).

use eventflow_runtime::aggregate::AggregateSchemas;
use serde_json::json;

use crate::events::{EVENT_TYPES, STATUSES};

pub fn order() -> AggregateSchemas {
    let text = json!({ "type": "string" });
    let money = json!({ "type": "number", "minimum": 0, "maximum": 1_000_000 });
    let line_item = json!({
        "type": "object",
        "required": ["name", "productId", "quantity", "price"],
        "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S" },
            "productId": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S" },
            "quantity": { "type": "integer", "minimum": 1, "maximum": 100 },
            "price": money, "tax": money
        }
    });
    AggregateSchemas {
        resource: json!({
            "type": "object",
            "required": ["orderId", "accountId", "lineItems", "paymentMethod", "total", "status", "reservations", "version", "createdAt", "lastModified"],
            "properties": {
                "orderId": text, "accountId": text,
                "paymentId": { "type": ["string", "null"] },
                "lineItems": { "type": "array", "items": line_item },
                "shippingAddress": {},
                "paymentMethod": text,
                "total": { "type": "number" },
                "status": { "type": "string", "enum": STATUSES },
                "expectedReservations": { "type": "integer" },
                "reservations": { "type": "array", "items": { "type": "object",
                    "required": ["reservationId", "outcome", "href"],
                    "properties": { "reservationId": text, "outcome": { "type": "string", "enum": ["SUCCEEDED", "FAILED"] }, "href": text } } },
                "failureReason": { "type": ["string", "null"] },
                "accountHref": { "type": ["string", "null"] },
                "paymentHref": { "type": ["string", "null"] },
                "version": { "type": "integer" },
                "createdAt": { "type": "string", "format": "date-time" },
                "lastModified": { "type": "string", "format": "date-time" }
            }
        }),
        create: json!({
            "type": "object",
            "required": ["accountId", "lineItems"],
            "properties": {
                "accountId": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S" },
                "lineItems": { "type": "array", "minItems": 1, "maxItems": 50, "items": line_item },
                "shippingAddress": {},
                "paymentMethod": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S",
                    "description": "DECLINED makes the payment fail on purpose (the compensation path)." }
            }
        }),
        event_payload: json!({ "type": "object" }),
        event_types: EVENT_TYPES,
    }
}
