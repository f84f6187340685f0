//! `POST /v1/accounts/{id}/commands/postOrder`: an ACTIVE account posts an
//! order to the order context of its Stream (found through
//! `EVENTFLOW_PEER_ORDER_URL`, never a hard-coded host); the order context
//! connects it back to the account through its own saga. Without an order
//! context the command is refused with 409, like any command the current
//! situation forbids, and not offered. The URL is configuration: read once
//! when the routes are wired ([`OrderContext::from_env`]) and handed to the
//! handler, so the account aggregate stays pure.
//!
//! Nothing is written to the account: the command core
//! (`eventflow_runtime::command`) only loads it and checks the
//! Idempotency-Key, which goes on to the order context, scoped by account.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::Response,
    routing::{MethodRouter, post},
};
use eventflow_runtime::{
    command::{IDEMPOTENCY_KEY, idempotency_key},
    hal, hypermedia,
    problem::{Problem, parse_json},
    web::{AlsoOffered, WebContext},
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

/// The order context of this Stream: its base URL, if one is deployed.
#[derive(Clone, Debug, Default)]
pub struct OrderContext {
    url: Option<Arc<str>>,
}

impl OrderContext {
    /// The order context at `url` (`None`: not deployed).
    pub fn new(url: Option<String>) -> Self {
        Self {
            url: url.map(Into::into),
        }
    }

    /// The one read of `EVENTFLOW_PEER_ORDER_URL`, at wiring.
    pub fn from_env() -> Self {
        Self::new(hypermedia::peer_url("order").ok())
    }

    /// `postOrder` is offered to an ACTIVE account when an order context
    /// is deployed.
    pub fn offered(&self) -> AlsoOffered<Account> {
        let deployed = self.url.is_some();
        Arc::new(move |account: &Account| {
            if deployed && account.status == Status::Active {
                vec!["postOrder"]
            } else {
                Vec::new()
            }
        })
    }

    /// The `postOrder` handler, holding this order context.
    pub fn route(self) -> MethodRouter<WebContext> {
        post(
            move |ctx: State<WebContext>, id: Path<String>, headers: HeaderMap, body: Bytes| async move {
                post_order(ctx, id, headers, body, &self).await
            },
        )
    }
}

async fn post_order(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    orders: &OrderContext,
) -> Result<Response, Problem> {
    let (account, _) = ctx.require::<Account>(&id).await?;
    if account.status != Status::Active {
        return Err(Problem::conflict(format!(
            "postOrder is not allowed while the account is {}",
            account.status.name()
        )));
    }
    let Some(orders) = &orders.url else {
        return Err(Problem::conflict(
            "postOrder needs the order context, which is not deployed in this Stream",
        ));
    };
    // The situation is checked before the body and the key: 404 and 409
    // win over 400.
    let input: PostOrder = parse_json(&body)?;
    let key = idempotency_key(&headers)?;
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
    if let Some(key) = key {
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
            let mut reply = hal::response(StatusCode::CREATED, order);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn account(status: Status) -> Account {
        Account {
            status,
            ..Account::default()
        }
    }

    #[test]
    fn post_order_is_offered_to_an_active_account_only_when_an_order_context_is_deployed() {
        let deployed = OrderContext::new(Some("http://order-web:8080".into())).offered();
        assert_eq!(deployed(&account(Status::Active)), ["postOrder"]);
        assert!(deployed(&account(Status::Suspended)).is_empty());
        let absent = OrderContext::new(None).offered();
        assert!(absent(&account(Status::Active)).is_empty());
    }
}
