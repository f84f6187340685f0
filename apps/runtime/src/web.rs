//! The HTTP API every aggregate gets (DOMAIN.md, "Common HTTP shape"):
//! create, get, paged list, the aggregate's event log and single events, the
//! commands valid now, command execution with `Idempotency-Key`, and the
//! global feed. Commands that lose an optimistic-concurrency race are decided
//! again on the new state, so the loser sees the winner's effect (often a 409).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{
    aggregate::{Aggregate, DomainError, replay},
    hal::{self, HAL_JSON, link, represent, represent_event, resource_url},
    metrics::Metrics,
    problem::{JsonBody, Problem, parse_json},
    store::{AppendError, Claim, Commit, EventStore, IdempotentResult, StreamWrite},
};

/// Header a caller sets so a repeated command is applied once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How often a command is decided again after losing a race.
const MAX_CONFLICT_RETRIES: usize = 20;
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

/// What the handlers share.
#[derive(Clone)]
pub struct WebContext {
    pub store: EventStore,
    pub metrics: Metrics,
    /// Wakes the outbox relay after a commit.
    pub relay: Arc<Notify>,
}

fn hal(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, HAL_JSON)], body.to_string()).into_response()
}

/// The idempotency key of a request, scoped by its target: the same key
/// sent to another resource or command is another request.
fn idempotency_key(headers: &HeaderMap, target: &str) -> Result<Option<String>, Problem> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 512 => Ok(Some(format!("POST {target} {k}"))),
            _ => Err(Problem::bad_request(
                "Idempotency-Key",
                "must be 1 to 512 visible ASCII characters",
            )),
        },
    }
}

/// `after` and `limit` of a paged request.
fn page(query: &HashMap<String, String>) -> Result<(i64, i64), Problem> {
    let number = |name: &str, default: i64, min: i64, max: i64| match query.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(Problem::bad_request(
                name,
                format!("{name} must be an integer from {min} to {max}"),
            )),
        },
    };
    Ok((
        number("after", 0, 0, i64::MAX)?,
        number("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)?,
    ))
}

/// The routes of one aggregate type; merge several into one web role.
pub fn aggregate_routes<A: Aggregate>() -> Router<WebContext> {
    let c = A::COLLECTION;
    Router::new()
        .route(&format!("/v1/{c}"), post(create::<A>).get(list::<A>))
        .route(&format!("/v1/{c}/{{id}}"), get(get_one::<A>))
        .route(&format!("/v1/{c}/{{id}}/events"), get(events::<A>))
        .route(
            &format!("/v1/{c}/{{id}}/events/{{event_id}}"),
            get(one_event::<A>),
        )
        .route(&format!("/v1/{c}/{{id}}/commands"), get(commands::<A>))
        .route(
            &format!("/v1/{c}/{{id}}/commands/{{command}}"),
            post(run_command::<A>),
        )
}

/// The global feed of every event in the store (`GET /v1/events?after=`);
/// `collection_of` maps an aggregate type to its collection for links.
pub fn feed_routes(collection_of: fn(&str) -> &'static str) -> Router<WebContext> {
    Router::new().route(
        "/v1/events",
        get(move |State(ctx): State<WebContext>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
            let (after, limit) = page(&q)?;
            let base = hal::base_url(&headers);
            let events = ctx.store.feed(after, limit).await?;
            let items: Vec<Value> =
                events.iter().map(|e| represent_event(e, collection_of(&e.aggregate_type), &base)).collect();
            let mut links = json!({ "self": link(format!("{base}/v1/events?after={after}&limit={limit}")) });
            if let Some(last) = events.last().filter(|_| events.len() as i64 == limit) {
                links["next"] = link(format!("{base}/v1/events?after={}&limit={limit}", last.position));
            }
            Ok::<_, Problem>(hal(StatusCode::OK, json!({ "_embedded": { "events": items }, "_links": links })))
        }),
    )
}

async fn load<A: Aggregate>(ctx: &WebContext, id: &str) -> Result<(A, i64), Problem> {
    let events = ctx.store.load(A::KIND, id).await?;
    let version = events.last().map_or(0, |e| e.version);
    let state =
        replay::<A>(&events).ok_or_else(|| Problem::not_found(format!("no {} {id}", A::KIND)))?;
    Ok((state, version))
}

/// Commits, or returns the first result of the same idempotency key.
async fn commit(
    ctx: &WebContext,
    commit: &Commit,
) -> Result<Option<IdempotentResult>, AppendError> {
    match ctx.store.append(commit).await {
        Ok(events) => {
            ctx.metrics.events_appended.inc_by(events.len() as u64);
            ctx.relay.notify_one();
            Ok(None)
        }
        Err(AppendError::DuplicateKey(key)) => {
            Ok(ctx
                .store
                .idempotent_result(&key)
                .await?
                .or(Some(IdempotentResult {
                    key,
                    status: 409,
                    body: json!({}),
                })))
        }
        Err(e) => Err(e),
    }
}

fn replayed(r: IdempotentResult) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut response = hal(status, r.body);
    response.headers_mut().insert(
        "idempotent-replayed",
        header::HeaderValue::from_static("true"),
    );
    response
}

async fn create<A: Aggregate>(
    State(ctx): State<WebContext>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<A::Create>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers, &format!("/v1/{}", A::COLLECTION))?;
    if let Some(key) = &key
        && let Some(first) = ctx.store.idempotent_result(key).await?
    {
        return Ok(replayed(first));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let creation = A::create(&id, input)?;
    let mut state = A::default();
    for (i, e) in creation.events.iter().enumerate() {
        state.apply(&e.at_version(A::KIND, &id, i as i64 + 1));
    }
    let base = hal::base_url(&headers);
    let body = represent(&state, &id, &base);
    let write = StreamWrite {
        aggregate_type: A::KIND.to_owned(),
        aggregate_id: id.clone(),
        expected_version: 0,
        events: creation.events,
        snapshot: serde_json::to_value(&state).unwrap_or(Value::Null),
        lookup: state.lookup(),
    };
    let claims = creation
        .claims
        .into_iter()
        .map(|(scope, value)| Claim {
            scope,
            value,
            aggregate_id: id.clone(),
        })
        .collect();
    let idempotency = key.map(|key| IdempotentResult {
        key,
        status: 201,
        body: body.clone(),
    });
    match commit(
        &ctx,
        &Commit {
            writes: vec![write],
            claims,
            idempotency,
        },
    )
    .await
    {
        Ok(None) => {
            let mut response = hal(StatusCode::CREATED, body);
            if let Ok(location) = header::HeaderValue::from_str(&resource_url::<A>(&base, &id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Ok(Some(first)) => Ok(replayed(first)),
        Err(AppendError::ClaimTaken { scope, value }) => {
            let field = scope.rsplit('.').next().unwrap_or(&scope).to_owned();
            Err(Problem {
                field: Some(field),
                ..Problem::conflict(format!("{scope} {value:?} is already taken"))
            })
        }
        Err(AppendError::Store(e)) => Err(e.into()),
        Err(e) => Err(Problem::conflict(e.to_string())),
    }
}

async fn list<A: Aggregate>(
    State(ctx): State<WebContext>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (after, limit) = page(&q)?;
    let base = hal::base_url(&headers);
    let rows = ctx.store.list(A::KIND, after, limit).await?;
    let c = A::COLLECTION;
    let mut items = Vec::new();
    for (_, id, snapshot) in &rows {
        let state: A = serde_json::from_value(snapshot.clone())
            .map_err(|e| Problem::internal(e.to_string()))?;
        items.push(represent(&state, id, &base));
    }
    let mut links = json!({ "self": link(format!("{base}/v1/{c}?after={after}&limit={limit}")) });
    if let Some((last, _, _)) = rows.last().filter(|_| rows.len() as i64 == limit) {
        links["next"] = link(format!("{base}/v1/{c}?after={last}&limit={limit}"));
    }
    Ok(hal(
        StatusCode::OK,
        json!({ "_embedded": { c: items }, "_links": links }),
    ))
}

async fn get_one<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (state, _) = load::<A>(&ctx, &id).await?;
    Ok(hal(
        StatusCode::OK,
        represent(&state, &id, &hal::base_url(&headers)),
    ))
}

async fn events<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let events = ctx.store.load(A::KIND, &id).await?;
    if events.is_empty() {
        return Err(Problem::not_found(format!("no {} {id}", A::KIND)));
    }
    let base = hal::base_url(&headers);
    let url = resource_url::<A>(&base, &id);
    let items: Vec<Value> = events
        .iter()
        .map(|e| represent_event(e, A::COLLECTION, &base))
        .collect();
    let links = json!({ "self": link(format!("{url}/events")), A::KIND: link(url) });
    Ok(hal(
        StatusCode::OK,
        json!({ "_embedded": { "events": items }, "_links": links }),
    ))
}

async fn one_event<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path((id, event_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let events = ctx.store.load(A::KIND, &id).await?;
    let e = events
        .iter()
        .find(|e| e.event_id == event_id)
        .ok_or_else(|| Problem::not_found(format!("no event {event_id} of {} {id}", A::KIND)))?;
    Ok(hal(
        StatusCode::OK,
        represent_event(e, A::COLLECTION, &hal::base_url(&headers)),
    ))
}

async fn commands<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (state, _) = load::<A>(&ctx, &id).await?;
    let url = resource_url::<A>(&hal::base_url(&headers), &id);
    let valid = state.commands();
    let mut links = json!({ "self": link(format!("{url}/commands")), A::KIND: link(&url) });
    for c in &valid {
        links[*c] = link(format!("{url}/commands/{c}"));
    }
    Ok(hal(
        StatusCode::OK,
        json!({ "commands": valid, "_links": links }),
    ))
}

async fn run_command<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path((id, command)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let key = idempotency_key(
        &headers,
        &format!("/v1/{}/{id}/commands/{command}", A::COLLECTION),
    )?;
    if let Some(key) = &key
        && let Some(first) = ctx.store.idempotent_result(key).await?
    {
        return Ok(replayed(first));
    }
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        parse_json(&body)?
    };
    let base = hal::base_url(&headers);
    for _ in 0..MAX_CONFLICT_RETRIES {
        let (state, version) = load::<A>(&ctx, &id).await?;
        if !A::COMMANDS.contains(&command.as_str()) {
            return Err(Problem::not_found(format!(
                "{} has no command {command:?}",
                A::KIND
            )));
        }
        let new_events = state.execute(&command, &input).map_err(|e: DomainError| {
            ctx.metrics.commands_refused.inc();
            Problem::from(e)
        })?;
        let mut next = state.clone();
        for (i, e) in new_events.iter().enumerate() {
            next.apply(&e.at_version(A::KIND, &id, version + i as i64 + 1));
        }
        let body = represent(&next, &id, &base);
        let write = StreamWrite {
            aggregate_type: A::KIND.to_owned(),
            aggregate_id: id.clone(),
            expected_version: version,
            events: new_events,
            snapshot: serde_json::to_value(&next).unwrap_or(Value::Null),
            lookup: next.lookup(),
        };
        let idempotency = key.clone().map(|key| IdempotentResult {
            key,
            status: 200,
            body: body.clone(),
        });
        match commit(
            &ctx,
            &Commit {
                writes: vec![write],
                claims: vec![],
                idempotency,
            },
        )
        .await
        {
            Ok(None) => return Ok(hal(StatusCode::OK, body)),
            Ok(Some(first)) => return Ok(replayed(first)),
            Err(AppendError::Conflict { .. }) => {
                ctx.metrics.concurrency_conflicts.inc();
                continue;
            }
            Err(AppendError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(Problem::conflict(e.to_string())),
        }
    }
    Err(Problem::conflict(format!(
        "{} {id} is changing too fast; try again",
        A::KIND
    )))
}

/// A problem+json 404 for every route nobody serves.
pub async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}
