//! `POST /v1/accounts/{id}/commands/postOrder`: an ACTIVE account posts an
//! order to the order context of its Stream (found through
//! `EVENTFLOW_PEER_ORDER_URL`, never a hard-coded host); the order context
//! connects it back to the account through its own saga. Without an order
//! context the command is refused with 409, like any command the current
//! situation forbids.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use eventflow_contract::env::peer_url_var;
use eventflow_runtime::{
    aggregate::replay,
    hal::{self, HAL_JSON},
    problem::{Problem, parse_json},
    web::{IDEMPOTENCY_KEY, WebContext},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::account::{Account, Status};

/// Body of `postOrder`: the order without its account (the path names it).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostOrder {
    pub line_items: Vec<Value>,
    #[serde(default)]
    pub shipping_address: Value,
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// The order context's base URL, if this Stream has one.
pub fn order_context() -> Option<String> {
    std::env::var(peer_url_var("order"))
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.trim_end_matches('/').to_owned())
}

pub async fn post_order(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let events = ctx.store.load("account", &id).await?;
    let account: Account =
        replay(&events).ok_or_else(|| Problem::not_found(format!("no account {id}")))?;
    if account.status != Status::Active {
        return Err(Problem::conflict(format!(
            "postOrder is not allowed while the account is {}",
            account.status.name()
        )));
    }
    let Some(orders) = order_context() else {
        return Err(Problem::conflict(
            "postOrder needs the order context, which is not deployed in this Stream",
        ));
    };
    // The situation is checked before the body: 404 and 409 win over 400.
    let input: PostOrder = parse_json(&body)?;
    let base = hal::base_url(&headers);
    let body = json!({
        "accountId": id,
        "accountHref": hal::resource_url::<Account>(&base, &id),
        "lineItems": input.line_items,
        "shippingAddress": input.shipping_address,
        "paymentMethod": input.payment_method,
    });
    let mut request = reqwest::Client::new()
        .post(format!("{orders}/v1/orders"))
        .json(&body);
    if let Some(key) = headers.get(IDEMPOTENCY_KEY).and_then(|v| v.to_str().ok()) {
        // Scoped like the account's own keys: a repeat creates no second order.
        request = request.header(IDEMPOTENCY_KEY, format!("postOrder:{id}:{key}"));
    }
    let response = request.send().await.map_err(|e| {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway",
            format!("order context: {e}"),
        )
    })?;
    let status = response.status();
    let location = response.headers().get(header::LOCATION).cloned();
    let order: Value = response.json().await.unwrap_or(Value::Null);
    match status.as_u16() {
        200 | 201 => {
            let mut reply = (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, HAL_JSON)],
                order.to_string(),
            )
                .into_response();
            if let Some(location) = location {
                reply.headers_mut().insert(header::LOCATION, location);
            }
            Ok(reply)
        }
        // The order context refused the order itself: pass its reason on.
        400 | 409 => Err(Problem {
            field: order["field"].as_str().map(str::to_owned),
            ..Problem::new(
                status,
                if status == StatusCode::BAD_REQUEST {
                    "Bad Request"
                } else {
                    "Conflict"
                },
                order["detail"]
                    .as_str()
                    .unwrap_or("the order context refused the order")
                    .to_owned(),
            )
        }),
        _ => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway",
            format!("order context answered {status}"),
        )),
    }
}

/// JSON Schema of the request body.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["lineItems"],
        "properties": {
            "lineItems": { "type": "array", "items": { "type": "object" } },
            "shippingAddress": {},
            "paymentMethod": { "type": "string" }
        }
    })
}

/// The OpenAPI path item of the command.
pub fn path_item() -> Value {
    let problem = |d: &str| {
        json!({ "description": d, "content": { "application/problem+json": {
            "schema": { "$ref": "#/components/schemas/Problem" } } } })
    };
    json!({ "post": {
        "operationId": "postOrder",
        "summary": "An ACTIVE account posts an order to the order context of its Stream.",
        "parameters": [
            { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } },
            { "name": "Idempotency-Key", "in": "header", "required": false,
              "schema": { "type": "string", "pattern": "^[A-Za-z0-9:._-]{1,200}$" } }
        ],
        "requestBody": { "required": true, "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/PostOrder" } } } },
        "responses": {
            "201": { "description": "The order, as the order context returned it",
                     "content": { "application/hal+json": { "schema": { "type": "object" } } } },
            "400": problem("Malformed body, or the order context refused a field"),
            "404": problem("Unknown account"),
            "409": problem("The account is not ACTIVE, or no order context is deployed"),
            "502": problem("The order context failed"),
            "503": problem("Event store unavailable")
        }
    } })
}
