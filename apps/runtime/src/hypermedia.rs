//! The one HAL client of every app's functions: they read resources by
//! following links (from an event to its aggregate, from a resource to its
//! `commands`), run the commands a resource offers *now* (with a JSON body
//! when the command needs one) and create resources in peer contexts,
//! always with an idempotency key so a redelivered event never doubles an
//! effect. Peers are found only through the wiring contract's
//! `EVENTFLOW_PEER_<APP>_URL`, never a hard-coded host.
//!
//! Every failure is a [`HandlerError::Failed`], so the consumer retries the
//! event after its backoff (a peer restarting, a state not reached yet).

use std::{sync::LazyLock, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;

use crate::{cloudevent::CloudEvent, consumer::HandlerError, hal, web::IDEMPOTENCY_KEY};

/// Longest wait for one request to a peer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

static CLIENT: LazyLock<HalClient> = LazyLock::new(HalClient::new);

/// The process-wide client (one connection pool for every function).
pub fn client() -> &'static HalClient {
    &CLIENT
}

fn failed(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Failed(e.to_string())
}

/// `EVENTFLOW_PEER_<APP>_URL` without its trailing slash.
pub fn peer_url(app: &str) -> Result<String, HandlerError> {
    let var = eventflow_contract::env::peer_url_var(app);
    std::env::var(&var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.trim_end_matches('/').to_owned())
        .ok_or_else(|| failed(format!("{var} is not set: cannot reach the {app} context")))
}

/// The idempotency key a worker sends: `<event id>:<command>:<target id>`.
pub fn idempotency_key(event: &CloudEvent, command: &str, target: &str) -> String {
    format!("{}:{command}:{target}", event.id)
}

/// The aggregate type of an event (`order` of `dev.eventflow.order.ORDER_CREATED`).
pub fn aggregate_of(event: &CloudEvent) -> &str {
    event
        .data
        .get("aggregateType")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The href of `rel` in a HAL document, or a retryable error naming it.
pub fn link<'a>(doc: &'a Value, rel: &str) -> Result<&'a str, HandlerError> {
    hal::href(doc, rel).ok_or_else(|| {
        let me = hal::href(doc, "self").unwrap_or("a document");
        HandlerError::Malformed(format!("{me} has no {rel:?} link"))
    })
}

/// What running a command did.
#[derive(Clone, Debug, PartialEq)]
pub enum Ran {
    /// It ran; the resource after it.
    Done(Value),
    /// The resource does not offer it now, or refused it (409).
    NotOffered,
}

impl Ran {
    pub fn done(&self) -> bool {
        matches!(self, Self::Done(_))
    }
}

/// An HTTP client that follows HAL links; every function uses the one of
/// [`client`].
#[derive(Clone, Debug)]
pub struct HalClient {
    http: reqwest::Client,
}

impl Default for HalClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HalClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// GETs a HAL document; anything but 2xx is an error.
    pub async fn get(&self, url: &str) -> Result<Value, HandlerError> {
        let response = self.http.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("GET {url}: {status}")));
        }
        response.json().await.map_err(failed)
    }

    /// The aggregate an event is about, as it is now. A resource older than
    /// the event (a lagging read) is an error, so the event is retried
    /// rather than acted on with stale state.
    pub async fn subject(&self, event: &CloudEvent) -> Result<Value, HandlerError> {
        let resource = self.get(link(&event.data, aggregate_of(event))?).await?;
        let seen = resource.get("version").and_then(Value::as_i64);
        let sent = event.data.get("version").and_then(Value::as_i64);
        if let (Some(seen), Some(sent)) = (seen, sent)
            && seen < sent
        {
            return Err(failed(format!(
                "{} is at version {seen}, older than event {} (version {sent})",
                link(&resource, "self")?,
                event.id
            )));
        }
        Ok(resource)
    }

    /// [`Self::subject`] if the event is about a `kind` aggregate; `None`
    /// for another aggregate's event that shares the event's name (e.g.
    /// `reservation.RESERVATION_PENDING` beside `order.RESERVATION_PENDING`).
    pub async fn subject_of_kind(
        &self,
        event: &CloudEvent,
        kind: &str,
    ) -> Result<Option<Value>, HandlerError> {
        if aggregate_of(event) != kind {
            return Ok(None);
        }
        self.subject(event).await.map(Some)
    }

    /// The current state of a resource (its `self` link).
    pub async fn refresh(&self, resource: &Value) -> Result<Value, HandlerError> {
        self.get(link(resource, "self")?).await
    }

    /// POSTs `body` to a collection with an idempotency key: a repeat
    /// returns the first result, so a redelivered event creates nothing new.
    pub async fn create(
        &self,
        collection_url: &str,
        body: &Value,
        key: &str,
    ) -> Result<Value, HandlerError> {
        let response = self
            .http
            .post(collection_url)
            .header(IDEMPOTENCY_KEY, key)
            .json(body)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            return Err(failed(format!("POST {collection_url}: {status} {detail}")));
        }
        response.json().await.map_err(failed)
    }

    /// Runs `command` on `resource` if its `commands` link offers it now,
    /// with `body` (or no body) and the idempotency key `key`.
    pub async fn run(
        &self,
        resource: &Value,
        command: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Ran, HandlerError> {
        self.run_listed(link(resource, "commands")?, command, body, key)
            .await
    }

    /// From an event, follows its aggregate link to the resource (as it is
    /// now, whatever its version) and runs `command` if offered, without a
    /// body, with the idempotency key `<event id>:<command>:<target id>`.
    pub async fn run_offered_command(
        &self,
        event: &CloudEvent,
        command: &str,
    ) -> Result<Ran, HandlerError> {
        let aggregate = aggregate_of(event);
        let resource_url = hal::href(&event.data, aggregate).ok_or_else(|| {
            HandlerError::Malformed(format!("event {} has no {aggregate:?} link", event.id))
        })?;
        let resource = self.get(resource_url).await?;
        let commands_url = hal::href(&resource, "commands")
            .ok_or_else(|| failed(format!("{resource_url} has no commands link")))?;
        let target = event.subject.as_deref().unwrap_or_default();
        let key = idempotency_key(event, command, target);
        self.run_listed(commands_url, command, None, &key).await
    }

    /// Runs `command` if the commands document at `commands_url` links it.
    async fn run_listed(
        &self,
        commands_url: &str,
        command: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Ran, HandlerError> {
        let commands = self.get(commands_url).await?;
        let Some(url) = hal::href(&commands, command) else {
            return Ok(Ran::NotOffered);
        };
        let mut request = self.http.post(url).header(IDEMPOTENCY_KEY, key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(failed)?;
        match response.status() {
            s if s.is_success() => Ok(Ran::Done(response.json().await.map_err(failed)?)),
            StatusCode::CONFLICT => Ok(Ran::NotOffered),
            s => {
                let detail = response.text().await.unwrap_or_default();
                Err(failed(format!("POST {url}: {s} {detail}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_missing_link_names_the_document_and_the_relation() {
        let doc = json!({ "_links": { "self": { "href": "http://o/v1/orders/1" } } });
        let e = link(&doc, "payment").unwrap_err().to_string();
        assert!(
            e.contains("http://o/v1/orders/1") && e.contains("payment"),
            "{e}"
        );
        assert_eq!(link(&doc, "self").unwrap(), "http://o/v1/orders/1");
    }

    #[test]
    fn an_unset_peer_is_a_retryable_error_naming_the_variable() {
        let e = peer_url("no-such-peer-app").unwrap_err().to_string();
        assert!(e.contains("EVENTFLOW_PEER_NO_SUCH_PEER_APP_URL"), "{e}");
    }
}
