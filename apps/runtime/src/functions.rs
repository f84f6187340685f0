//! Action-mapped functions: named, stateless transition actions — an event
//! in, commands out by following the links of the event and of the resources
//! it points to (never by building URLs). The worker runs them in-process;
//! the `functions` role serves the same registry at `POST /functions/{name}`
//! (CloudEvents HTTP binding, structured or binary mode).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    cloudevent::{self, CloudEvent},
    consumer::{Handled, Handler, HandlerError},
    hal,
    problem::{Problem, parse_json},
    web::IDEMPOTENCY_KEY,
};

/// What a function did: the commands it ran and those it skipped because
/// they were no longer offered (already done by an earlier delivery).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
}

pub type FunctionFuture = Pin<Box<dyn Future<Output = Result<Outcome, HandlerError>> + Send>>;

/// One action-mapped function.
#[derive(Clone)]
pub struct Function {
    pub name: &'static str,
    /// The `<EVENT>` names that trigger it in the worker.
    pub triggers: &'static [&'static str],
    pub run: fn(HalClient, CloudEvent) -> FunctionFuture,
}

/// The functions of an app.
#[derive(Clone, Default)]
pub struct Registry {
    pub functions: Vec<Function>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The routing keys (`<aggregate_type>.<event>`) of every event that
    /// triggers a function, sorted: what a worker running these functions
    /// must subscribe to.
    pub fn trigger_keys(&self, aggregate_type: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .functions
            .iter()
            .flat_map(|f| f.triggers.iter().map(|t| format!("{aggregate_type}.{t}")))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The worker's handler: every function triggered by the event, in order.
    pub fn handler(self, client: HalClient) -> Handler {
        let registry = Arc::new(self);
        Arc::new(move |ce: CloudEvent| {
            let (registry, client) = (registry.clone(), client.clone());
            Box::pin(async move {
                let triggered: Vec<Function> = registry
                    .functions
                    .iter()
                    .filter(|f| f.triggers.contains(&ce.event_name()))
                    .cloned()
                    .collect();
                if triggered.is_empty() {
                    return Ok(Handled::Ignored);
                }
                for f in triggered {
                    let outcome = (f.run)(client.clone(), ce.clone()).await?;
                    tracing::info!(function = f.name, event = %ce.id, ran = ?outcome.ran, skipped = ?outcome.skipped, "function done");
                }
                Ok(Handled::Done)
            })
        })
    }

    /// `POST /functions/{name}` for the `functions` role.
    pub fn routes(self, client: HalClient) -> Router {
        Router::new()
            .route("/functions/{name}", post(invoke))
            .with_state((Arc::new(self), client))
    }
}

/// Reads a CloudEvent from an HTTP request in structured or binary mode.
pub fn cloudevent_from_http(headers: &HeaderMap, body: &[u8]) -> Result<CloudEvent, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with(cloudevent::CONTENT_TYPE) {
        return parse_json(body);
    }
    let ce = |name: &str| {
        headers
            .get(format!("ce-{name}"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let required = |name: &str| {
        ce(name)
            .ok_or_else(|| Problem::bad_request(format!("ce-{name}"), "missing CloudEvents header"))
    };
    Ok(CloudEvent {
        specversion: required("specversion")?,
        id: required("id")?,
        source: required("source")?,
        event_type: required("type")?,
        subject: ce("subject"),
        time: ce("time"),
        datacontenttype: Some(content_type.to_owned()).filter(|c| !c.is_empty()),
        sequence: ce("sequence"),
        data: if body.is_empty() {
            Value::Null
        } else {
            parse_json(body)?
        },
    })
}

async fn invoke(
    State((registry, client)): State<(Arc<Registry>, HalClient)>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(function) = registry.get(&name) else {
        return Problem::not_found(format!("no function {name:?}")).into_response();
    };
    let ce = match cloudevent_from_http(&headers, &body) {
        Ok(ce) => ce,
        Err(p) => return p.into_response(),
    };
    match (function.run)(client, ce).await {
        Ok(outcome) => (StatusCode::OK, Json(json!({ "function": function.name, "ran": outcome.ran, "skipped": outcome.skipped }))).into_response(),
        Err(HandlerError::Malformed(m)) => Problem::bad_request("data", m).into_response(),
        Err(e) => Problem::new(StatusCode::BAD_GATEWAY, "Bad Gateway", e.to_string()).into_response(),
    }
}

/// An HTTP client that follows HAL links.
#[derive(Clone, Debug)]
pub struct HalClient {
    http: reqwest::Client,
}

impl Default for HalClient {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { http }
    }
}

fn failed(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Failed(e.to_string())
}

impl HalClient {
    pub async fn get(&self, url: &str) -> Result<Value, HandlerError> {
        let response = self.http.get(url).send().await.map_err(failed)?;
        if !response.status().is_success() {
            return Err(failed(format!("GET {url}: {}", response.status())));
        }
        response.json().await.map_err(failed)
    }

    /// From an event, follows its aggregate link to the resource and the
    /// resource's `commands` link; runs `command` if offered now, with the
    /// idempotency key `<event id>:<command>:<target id>`. Returns whether it
    /// ran (`false`: not offered, or refused as the state moved on).
    pub async fn run_offered_command(
        &self,
        event: &CloudEvent,
        command: &str,
    ) -> Result<bool, HandlerError> {
        let aggregate = event
            .data
            .get("aggregateType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let resource_url = hal::href(&event.data, aggregate).ok_or_else(|| {
            HandlerError::Malformed(format!("event {} has no {aggregate:?} link", event.id))
        })?;
        let resource = self.get(resource_url).await?;
        let commands_url = hal::href(&resource, "commands")
            .ok_or_else(|| failed(format!("{resource_url} has no commands link")))?;
        let commands = self.get(commands_url).await?;
        let Some(command_url) = hal::href(&commands, command) else {
            return Ok(false);
        };
        let target = event.subject.as_deref().unwrap_or_default();
        let key = format!("{}:{command}:{target}", event.id);
        let response = self
            .http
            .post(command_url)
            .header(IDEMPOTENCY_KEY, key)
            .send()
            .await
            .map_err(failed)?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            s => Err(failed(format!("POST {command_url}: {s}"))),
        }
    }

    /// Runs `commands` in order (each only if offered at its turn).
    pub async fn run_offered_commands(
        &self,
        event: &CloudEvent,
        commands: &[&str],
    ) -> Result<Outcome, HandlerError> {
        let mut outcome = Outcome::default();
        for c in commands {
            if self.run_offered_command(event, c).await? {
                outcome.ran.push((*c).to_owned());
            } else {
                outcome.skipped.push((*c).to_owned());
            }
        }
        Ok(outcome)
    }
}
