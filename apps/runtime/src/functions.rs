//! Action-mapped functions: named, stateless transition actions — an event
//! in, commands out by following the links of the event and of the resources
//! it points to (never by building URLs). The worker runs them in-process;
//! the `functions` role serves the same registry at `POST /functions/{name}`
//! (CloudEvents HTTP binding, structured or binary mode). Functions reach
//! other resources through the one HAL client, [`crate::hypermedia`].

use std::{future::Future, pin::Pin, sync::Arc};

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
    hypermedia::{Ran, client},
    problem::{Problem, parse_json},
};

/// What a function did: the commands it ran and those it skipped because
/// they were no longer offered (already done by an earlier delivery).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
}

impl Outcome {
    /// Records `command` as ran or skipped, as `ran` says.
    pub fn record(&mut self, command: &str, ran: &Ran) {
        if ran.done() {
            self.ran.push(command.to_owned());
        } else {
            self.skipped.push(command.to_owned());
        }
    }
}

pub type FunctionFuture = Pin<Box<dyn Future<Output = Result<Outcome, HandlerError>> + Send>>;

/// One action-mapped function.
#[derive(Clone)]
pub struct Function {
    pub name: &'static str,
    /// The `<EVENT>` names that trigger it in the worker.
    pub triggers: &'static [&'static str],
    run: Arc<dyn Fn(CloudEvent) -> FunctionFuture + Send + Sync>,
}

impl Function {
    /// `run` is usually an `async fn(CloudEvent) -> Result<Outcome, HandlerError>`.
    pub fn new<F, Fut>(name: &'static str, triggers: &'static [&'static str], run: F) -> Self
    where
        F: Fn(CloudEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Outcome, HandlerError>> + Send + 'static,
    {
        Self {
            name,
            triggers,
            run: Arc::new(move |event| Box::pin(run(event))),
        }
    }

    pub fn run(&self, event: CloudEvent) -> FunctionFuture {
        (self.run)(event)
    }
}

/// Runs `commands` on the event's aggregate in order, each only if offered
/// at its turn ([`crate::hypermedia::HalClient::run_offered_command`]).
pub async fn run_offered_commands(
    event: &CloudEvent,
    commands: &[&str],
) -> Result<Outcome, HandlerError> {
    let mut outcome = Outcome::default();
    for command in commands {
        let ran = client().run_offered_command(event, command).await?;
        outcome.record(command, &ran);
    }
    Ok(outcome)
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
    pub fn handler(self) -> Handler {
        let registry = Arc::new(self);
        Arc::new(move |ce: CloudEvent| {
            let registry = registry.clone();
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
                    let outcome = f.run(ce.clone()).await?;
                    // Debug: a line per message would cost more CPU than
                    // the step itself (RUST_LOG=eventflow_runtime::functions=debug).
                    tracing::debug!(function = f.name, event = %ce.id, ran = ?outcome.ran, skipped = ?outcome.skipped, "function done");
                }
                Ok(Handled::Done)
            })
        })
    }

    /// `POST /functions/{name}` for the `functions` role.
    pub fn routes(self) -> Router {
        Router::new()
            .route("/functions/{name}", post(invoke))
            .with_state(Arc::new(self))
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
    State(registry): State<Arc<Registry>>,
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
    match function.run(ce).await {
        Ok(outcome) => (StatusCode::OK, Json(json!({ "function": function.name, "ran": outcome.ran, "skipped": outcome.skipped }))).into_response(),
        Err(HandlerError::Malformed(m)) => Problem::bad_request("data", m).into_response(),
        // A dependency is down: the caller may try again (with Retry-After).
        Err(e @ HandlerError::Unavailable(_)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            e.to_string(),
        )
        .into_response(),
        Err(e) => Problem::new(StatusCode::BAD_GATEWAY, "Bad Gateway", e.to_string()).into_response(),
    }
}
