//! The one HAL client of every app's functions: they read resources by
//! following links (from an event to its aggregate, from a resource to its
//! `commands`), run the commands a resource offers *now* (with a JSON body
//! when the command needs one) and create resources in peer contexts,
//! always with an idempotency key so a redelivered event never doubles an
//! effect. Peers are found only through the wiring contract's
//! `EVENTFLOW_PEER_<APP>_URL`, never a hard-coded host.
//!
//! Every failure is classified for the consumer ([`HandlerError`]):
//!
//! | what happened | error | the message |
//! |---|---|---|
//! | connection refused or reset, DNS, a request or body cut off, the 10 s request timeout | `Unavailable` | retried in process, no attempt spent |
//! | 502, 503, 504 (a peer restarting, its store down), 429, 408 | `Unavailable` | retried in process, no attempt spent |
//! | 409 on a command | — (`Ran::NotOffered`) | the command is skipped |
//! | any other 4xx (400 refused input, 404 not there yet, 422) | `Failed` | one attempt spent |
//! | 500, 501 and other 5xx (a bug), a 2xx whose body is not JSON | `Failed` | one attempt spent |
//! | a resource older than the event (a lagging read) | `Failed` | one attempt spent |
//! | a link missing from an event or a document | `Malformed` | one attempt spent |
//! | `EVENTFLOW_PEER_<APP>_URL` unset, an invalid URL | `Failed` | one attempt spent |
//!
//! A state not reached yet (a 404 while another context lags, a lagging
//! read) spends attempts on purpose: `maxAttempts × backoffMs` is how long a
//! saga step waits for another context (`Retry::SAGA_STEP`).

use std::{sync::LazyLock, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    cloudevent::CloudEvent, consumer::HandlerError, hal, metrics::PEER_REQUESTS,
    web::IDEMPOTENCY_KEY,
};

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

/// A reqwest error with its causes (`error sending request ...: connection refused`).
fn with_causes(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// True when a request failed because the peer could not be reached or did
/// not answer in time — connecting failed (refused, reset, DNS), the request
/// or its response was cut off, the timeout passed — rather than because of
/// what was sent or answered (an invalid URL, a body that is not JSON).
pub fn is_unreachable(e: &reqwest::Error) -> bool {
    if e.is_connect() || e.is_timeout() || e.is_request() {
        return true;
    }
    if e.is_body() || e.is_decode() {
        // Reading the body failed: cut off (a hyper or I/O error) is
        // transient, a body that is not the JSON expected is not.
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if cause.is::<serde_json::Error>() {
                return false;
            }
            source = cause.source();
        }
        return std::error::Error::source(e).is_some();
    }
    false
}

/// A request that failed: [`HandlerError::Unavailable`] when the peer could
/// not be reached ([`is_unreachable`]), else [`HandlerError::Failed`].
pub fn request_error(what: &str, e: &reqwest::Error) -> HandlerError {
    let text = format!("{what}: {}", with_causes(e));
    if is_unreachable(e) {
        HandlerError::Unavailable(text)
    } else {
        HandlerError::Failed(text)
    }
}

/// True for the statuses that say "not now" rather than "no": 502, 503 and
/// 504 (a peer restarting, behind a proxy, or its store unavailable), 429
/// and 408.
pub fn is_unavailable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::REQUEST_TIMEOUT
    )
}

/// An error status from a peer: [`HandlerError::Unavailable`] for
/// [`is_unavailable_status`], else [`HandlerError::Failed`] (a 4xx the peer
/// refused, a 500).
pub fn status_error(what: &str, status: StatusCode, detail: &str) -> HandlerError {
    let text = format!("{what}: {status} {detail}");
    if is_unavailable_status(status) {
        HandlerError::Unavailable(text)
    } else {
        HandlerError::Failed(text)
    }
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

/// The commands document a resource embeds (`_embedded.commands`, as a
/// `GET` of one resource answers), if it is the one its `commands` link
/// names; `None` when the client must follow the link.
fn embedded_commands<'a>(resource: &'a Value, commands_url: &str) -> Option<&'a Value> {
    let commands = resource.get("_embedded")?.get("commands")?;
    (hal::href(commands, "self") == Some(commands_url)).then_some(commands)
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
        Self::with_timeout(REQUEST_TIMEOUT)
    }

    /// A client whose requests time out after `timeout` (10 s for [`client`]).
    pub fn with_timeout(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// GETs a HAL document; anything but 2xx is an error.
    pub async fn get(&self, url: &str) -> Result<Value, HandlerError> {
        let what = format!("GET {url}");
        PEER_REQUESTS.sent("GET");
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| request_error(&what, &e))?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            return Err(status_error(&what, status, &detail));
        }
        response.json().await.map_err(|e| request_error(&what, &e))
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
        PEER_REQUESTS.sent("POST");
        let response = self
            .http
            .post(collection_url)
            .header(IDEMPOTENCY_KEY, key)
            .json(body)
            .send()
            .await
            .map_err(|e| request_error(&format!("POST {collection_url}"), &e))?;
        let status = response.status();
        let what = format!("POST {collection_url}");
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            return Err(status_error(&what, status, &detail));
        }
        response.json().await.map_err(|e| request_error(&what, &e))
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
        let commands_url = link(resource, "commands")?;
        self.run_on(resource, commands_url, command, body, key)
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
        self.run_on(&resource, commands_url, command, None, &key)
            .await
    }

    /// Runs `command` if `resource`'s commands document links it: the one it
    /// embeds, else the one at `commands_url` (a GET).
    async fn run_on(
        &self,
        resource: &Value,
        commands_url: &str,
        command: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Ran, HandlerError> {
        if let Some(commands) = embedded_commands(resource, commands_url) {
            return self.run_from(commands, command, body, key).await;
        }
        let commands = self.get(commands_url).await?;
        self.run_from(&commands, command, body, key).await
    }

    /// Runs `command` if the commands document `commands` links it.
    async fn run_from(
        &self,
        commands: &Value,
        command: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Ran, HandlerError> {
        let Some(url) = hal::href(commands, command) else {
            return Ok(Ran::NotOffered);
        };
        let mut request = self.http.post(url).header(IDEMPOTENCY_KEY, key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let what = format!("POST {url}");
        PEER_REQUESTS.sent("POST");
        let response = request.send().await.map_err(|e| request_error(&what, &e))?;
        match response.status() {
            s if s.is_success() => Ok(Ran::Done(
                response
                    .json()
                    .await
                    .map_err(|e| request_error(&what, &e))?,
            )),
            StatusCode::CONFLICT => Ok(Ran::NotOffered),
            s => {
                let detail = response.text().await.unwrap_or_default();
                Err(status_error(&what, s, &detail))
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

    /// A loopback server that answers every connection with `reply`
    /// (after reading the request), or closes it at once when `reply` is
    /// `None`, or never answers when `reply` is `Some("")`.
    async fn server(reply: Option<&'static str>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let _ = socket.read(&mut buf).await;
                    match reply {
                        None => drop(socket),
                        Some("") => tokio::time::sleep(Duration::from_secs(60)).await,
                        Some(reply) => {
                            let _ = socket.write_all(reply.as_bytes()).await;
                            let _ = socket.shutdown().await;
                        }
                    }
                });
            }
        });
        format!("http://{addr}/v1/things/1")
    }

    fn answer(status: u16, body: &'static str) -> &'static str {
        let reason = StatusCode::from_u16(status)
            .unwrap()
            .canonical_reason()
            .unwrap_or("X");
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .leak()
    }

    async fn get(reply: Option<&'static str>) -> Result<Value, HandlerError> {
        HalClient::with_timeout(Duration::from_millis(300))
            .get(&server(reply).await)
            .await
    }

    #[tokio::test]
    async fn a_peer_that_cannot_be_reached_or_does_not_answer_is_unavailable() {
        // Refused: a port bound but not listening refuses connections.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let refused = format!("http://{}/v1/things/1", socket.local_addr().unwrap());
        let e = client().get(&refused).await.unwrap_err();
        assert!(e.is_transient(), "refused: {e}");
        // Closed before answering (a peer killed mid-request).
        let e = get(None).await.unwrap_err();
        assert!(e.is_transient(), "closed: {e}");
        // No answer within the timeout.
        let e = get(Some("")).await.unwrap_err();
        assert!(e.is_transient(), "timeout: {e}");
        // The body cut off before its announced length.
        let cut = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"a\":";
        let e = get(Some(cut)).await.unwrap_err();
        assert!(e.is_transient(), "cut off: {e}");
    }

    #[tokio::test]
    async fn a_peer_saying_not_now_is_unavailable_and_one_saying_no_is_a_failure() {
        for status in [502, 503, 504, 429, 408] {
            let e = get(Some(answer(status, "{}"))).await.unwrap_err();
            assert!(matches!(e, HandlerError::Unavailable(_)), "{status}: {e}");
            assert!(e.to_string().contains(&status.to_string()), "{e}");
        }
        for status in [400, 401, 403, 404, 409, 410, 422, 500, 501] {
            let e = get(Some(answer(status, "{}"))).await.unwrap_err();
            assert!(matches!(e, HandlerError::Failed(_)), "{status}: {e}");
        }
        let e = get(Some(answer(200, "not json"))).await.unwrap_err();
        assert!(matches!(e, HandlerError::Failed(_)), "not JSON: {e}");
        let ok = get(Some(answer(200, r#"{"a":1}"#))).await.unwrap();
        assert_eq!(ok, json!({"a": 1}));
    }

    #[test]
    fn the_unavailable_statuses_are_exactly_the_not_now_ones() {
        let not_now: Vec<u16> = (100..600)
            .filter_map(|s| StatusCode::from_u16(s).ok())
            .filter(|s| is_unavailable_status(*s))
            .map(|s| s.as_u16())
            .collect();
        assert_eq!(not_now, [408, 429, 502, 503, 504]);
        let e = status_error("POST http://o/x", StatusCode::BAD_REQUEST, "amount");
        assert!(!e.is_transient() && e.to_string().contains("amount"), "{e}");
    }

    #[tokio::test]
    async fn a_409_on_a_command_is_not_offered_and_a_503_is_unavailable() {
        for (status, transient) in [(409, None), (503, Some(true)), (400, Some(false))] {
            let command = server(Some(answer(status, "{}"))).await;
            let commands = json!({ "_links": { "pay": { "href": command } } });
            let commands_url = server(Some(answer(200, commands.to_string().leak()))).await;
            let ran = HalClient::with_timeout(Duration::from_secs(5))
                .run_on(&serde_json::json!({}), &commands_url, "pay", None, "k")
                .await;
            match transient {
                None => assert_eq!(ran.unwrap(), Ran::NotOffered),
                Some(t) => assert_eq!(ran.unwrap_err().is_transient(), t, "{status}"),
            }
        }
    }

    #[test]
    fn an_unset_peer_is_a_retryable_error_naming_the_variable() {
        let e = peer_url("no-such-peer-app").unwrap_err().to_string();
        assert!(e.contains("EVENTFLOW_PEER_NO_SUCH_PEER_APP_URL"), "{e}");
    }
}
