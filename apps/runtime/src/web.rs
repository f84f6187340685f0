//! The HTTP API every aggregate gets (DOMAIN.md, "Common HTTP shape"):
//! create, get, paged list, the aggregate's event log and single events, the
//! commands valid now, command execution with `Idempotency-Key`, and the
//! global feed. Creating and running a command go through the command core
//! ([`crate::command`]): a command that loses an optimistic-concurrency race
//! is decided again on the new state, so the loser sees the winner's effect
//! (often a 409).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::{get, post},
};
use serde_json::{Value, json};

pub use crate::command::{IDEMPOTENCY_KEY, WebContext};
use crate::{
    aggregate::{Aggregate, DomainError},
    command::{Attempts, Begun, Decision, Outcome, write},
    hal::{self, link, represent, represent_event, resource_url},
    problem::{JsonBody, Problem, parse_json},
    store::Claim,
};

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

/// Commands an app serves on routes of its own beside the aggregate's (the
/// account's `postOrder`), listed with the aggregate's when they are valid
/// for the state.
pub type AlsoOffered<A> = Arc<dyn Fn(&A) -> Vec<&'static str> + Send + Sync>;

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
    aggregate_routes_offering::<A>(Arc::new(|_| Vec::new()))
}

/// [`aggregate_routes`] whose `GET .../commands` also lists the commands
/// the app serves on its own routes, when `also_offered` says they are
/// valid for the state.
pub fn aggregate_routes_offering<A: Aggregate>(also_offered: AlsoOffered<A>) -> Router<WebContext> {
    let c = A::COLLECTION;
    Router::new()
        .route(&format!("/v1/{c}"), post(create::<A>).get(list::<A>))
        .route(
            &format!("/v1/{c}/{{id}}"),
            get({
                let also_offered = also_offered.clone();
                move |ctx: State<WebContext>, id: Path<String>, headers: HeaderMap| async move {
                    get_one::<A>(ctx, id, headers, &*also_offered).await
                }
            }),
        )
        .route(&format!("/v1/{c}/{{id}}/events"), get(events::<A>))
        .route(
            &format!("/v1/{c}/{{id}}/events/{{event_id}}"),
            get(one_event::<A>),
        )
        .route(
            &format!("/v1/{c}/{{id}}/commands"),
            get(
                move |ctx: State<WebContext>, id: Path<String>, headers: HeaderMap| async move {
                    commands::<A>(ctx, id, headers, &*also_offered).await
                },
            ),
        )
        .route(
            &format!("/v1/{c}/{{id}}/commands/{{command}}"),
            post(execute::<A>),
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
            Ok::<_, Problem>(hal::response(StatusCode::OK, json!({ "_embedded": { "events": items }, "_links": links })))
        }),
    )
}

/// `POST /v1/{c}`: 201 with `Location`; a taken claim is a 409 naming the
/// field.
async fn create<A: Aggregate>(
    State(ctx): State<WebContext>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<A::Create>,
) -> Result<Response, Problem> {
    let base = hal::base_url(&headers);
    let id = uuid::Uuid::new_v4().to_string();
    // One attempt: a fresh id has no rival writer, and deciding uses the
    // input up (the closure takes it out of `input`).
    let attempts = Attempts {
        max: 1,
        exhausted: Problem::conflict(format!("{} {id} changed concurrently", A::KIND)),
    };
    let mut input = Some(input);
    let target = format!("/v1/{}", A::COLLECTION);
    ctx.run_command(&headers, &target, attempts, || {
        let input = input.take();
        async {
            let Some(input) = input else {
                return Ok(Decision::Again);
            };
            let creation = A::create(&id, input)?;
            let (write, state) = write(&id, &A::default(), 0, creation.events);
            let claims = creation
                .claims
                .into_iter()
                .map(|(scope, value)| Claim {
                    scope,
                    value,
                    aggregate_id: id.clone(),
                })
                .collect();
            Ok(Decision::Commit(Outcome {
                writes: vec![write],
                claims,
                status: StatusCode::CREATED,
                body: represent(&state, &id, &base),
                location: Some(resource_url::<A>(&base, &id)),
            }))
        }
    })
    .await
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
    Ok(hal::response(
        StatusCode::OK,
        json!({ "_embedded": { c: items }, "_links": links }),
    ))
}

/// `GET /v1/{c}/{id}`: the resource, with the commands valid now embedded
/// (`_embedded.commands`, the document of its `commands` link) so a client
/// that acts on it needs no second request.
async fn get_one<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    also_offered: &(dyn Fn(&A) -> Vec<&'static str> + Send + Sync),
) -> Result<Response, Problem> {
    let (state, _) = ctx.require::<A>(&id).await?;
    let base = hal::base_url(&headers);
    let mut body = represent(&state, &id, &base);
    body["_embedded"] = json!({ "commands": commands_document(&state, &id, &base, also_offered) });
    Ok(hal::response(StatusCode::OK, body))
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
    Ok(hal::response(
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
    Ok(hal::response(
        StatusCode::OK,
        represent_event(e, A::COLLECTION, &hal::base_url(&headers)),
    ))
}

async fn commands<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    also_offered: &(dyn Fn(&A) -> Vec<&'static str> + Send + Sync),
) -> Result<Response, Problem> {
    let (state, _) = ctx.require::<A>(&id).await?;
    let doc = commands_document(&state, &id, &hal::base_url(&headers), also_offered);
    Ok(hal::response(StatusCode::OK, doc))
}

/// The commands valid for `state` now, each a link to run it.
fn commands_document<A: Aggregate>(
    state: &A,
    id: &str,
    base: &str,
    also_offered: &(dyn Fn(&A) -> Vec<&'static str> + Send + Sync),
) -> Value {
    let url = resource_url::<A>(base, id);
    let mut valid = state.commands();
    valid.extend(also_offered(state));
    let mut links = json!({ "self": link(format!("{url}/commands")), A::KIND: link(&url) });
    for c in &valid {
        links[*c] = link(format!("{url}/commands/{c}"));
    }
    json!({ "commands": valid, "_links": links })
}

/// `POST /v1/{c}/{id}/commands/{command}`: the aggregate decides on its
/// state; a refusal is counted and answered as a problem.
async fn execute<A: Aggregate>(
    State(ctx): State<WebContext>,
    Path((id, command)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let base = hal::base_url(&headers);
    let target = format!("/v1/{}/{id}/commands/{command}", A::COLLECTION);
    let attempts = Attempts::conflict_retries(Problem::conflict(format!(
        "{} {id} is changing too fast; try again",
        A::KIND
    )));
    let (begun, read) = ctx.begin_command_on::<A>(&headers, &target, &id).await?;
    let decider = match begun {
        Begun::Repeat(first) => return Ok(first),
        Begun::New(decider) => decider,
    };
    // The first decision uses the state read with the idempotency record;
    // one after a lost race reads it again.
    let mut read = Some(read);
    let (ctx, id, body, command, base) = (&ctx, &id, &body, &command, &base);
    decider
        .decide(attempts, || {
            let first = read.take();
            async move {
                let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
                    Value::Null
                } else {
                    parse_json(body)?
                };
                let (state, version) = match first {
                    Some(Some(read)) => read,
                    Some(None) => {
                        return Err(Problem::not_found(format!("no {} {id}", A::KIND)));
                    }
                    None => ctx.require::<A>(id).await?,
                };
                if !A::COMMANDS.contains(&command.as_str()) {
                    return Err(Problem::not_found(format!(
                        "{} has no command {command:?}",
                        A::KIND
                    )));
                }
                let events = state.execute(command, &input).map_err(|e: DomainError| {
                    ctx.metrics.commands_refused.inc();
                    Problem::from(e)
                })?;
                let (write, next) = write(id, &state, version, events);
                let body = represent(&next, id, base);
                Ok(Decision::commit(vec![write], StatusCode::OK, body))
            }
        })
        .await
}

/// A problem+json 404 for every route nobody serves.
pub async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}
