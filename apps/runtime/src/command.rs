//! The command core: the one path every command takes, whether the runtime
//! serves it for an aggregate (`POST /v1/{c}`, `POST
//! /v1/{c}/{id}/commands/{name}`) or an app wrote it (the warehouse's
//! commands over several streams, the account's `postOrder`). In order:
//!
//! 1. the `Idempotency-Key` is checked — 1 to 512 visible ASCII characters —
//!    and scoped by its target, `POST {target} {key}`: the same key sent to
//!    another resource or command is another request;
//! 2. a repeat is answered with the first answer recorded under that key
//!    (header `idempotent-replayed: true`), before anything is read;
//! 3. the command decides on the streams it loads ([`WebContext::load`]) —
//!    the only step a command writes itself, as an async closure returning a
//!    [`Decision`];
//! 4. its writes are committed in one transaction with the idempotency record
//!    of its answer; if a stream moved meanwhile (optimistic concurrency),
//!    nothing is written and the command decides again on the new state, at
//!    most [`Attempts::max`] times;
//! 5. the relay is woken and the answer returned.

use std::sync::Arc;

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use serde_json::Value;
use tokio::sync::Notify;

use crate::{
    aggregate::Aggregate,
    hal,
    metrics::Metrics,
    problem::Problem,
    store::{AppendError, Claim, Commit, EventStore, IdempotentResult, NewEvent, StreamWrite},
};

/// Header a caller sets so a repeated command is applied once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How often a command is decided again after losing a race.
pub const MAX_CONFLICT_RETRIES: usize = 20;
/// Longest Idempotency-Key accepted (bytes, all visible ASCII).
const MAX_KEY_LEN: usize = 512;

/// What the handlers share; every command runs through it.
#[derive(Clone)]
pub struct WebContext {
    pub store: EventStore,
    pub metrics: Metrics,
    /// Wakes the outbox relay after a commit.
    pub relay: Arc<Notify>,
}

/// The Idempotency-Key a request carries, as sent: `None` without one, a
/// 400 problem naming the header when it is not 1 to 512 visible ASCII
/// characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Problem> {
    match headers.get(IDEMPOTENCY_KEY).map(HeaderValue::to_str) {
        None => Ok(None),
        Some(Ok(key)) if !key.is_empty() && key.len() <= MAX_KEY_LEN => Ok(Some(key)),
        Some(_) => Err(Problem::bad_request(
            "Idempotency-Key",
            "must be 1 to 512 visible ASCII characters",
        )),
    }
}

/// The state of aggregate `id` from its snapshot.
fn decode<A: Aggregate>(snapshot: Value, id: &str) -> Result<A, Problem> {
    serde_json::from_value(snapshot).map_err(|e| {
        Problem::internal(format!(
            "the snapshot of {} {id} does not read back: {e}",
            A::KIND
        ))
    })
}

/// The first answer of a repeated request, marked as replayed.
fn replayed(first: IdempotentResult) -> Response {
    let status = StatusCode::from_u16(first.status).unwrap_or(StatusCode::OK);
    let mut response = hal::response(status, first.body);
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Where a command request stands after its Idempotency-Key was checked.
pub enum Begun<'a> {
    /// Its key answered before: the first answer, replayed.
    Repeat(Response),
    /// A new request: decide it.
    New(Command<'a>),
}

/// A command request not answered before, with the scoped key (if any) its
/// answer is recorded under.
pub struct Command<'a> {
    ctx: &'a WebContext,
    key: Option<String>,
}

/// How often a command may decide, and the problem answered when every
/// attempt lost a race.
pub struct Attempts {
    pub max: usize,
    pub exhausted: Problem,
}

impl Attempts {
    /// [`MAX_CONFLICT_RETRIES`] attempts.
    pub fn conflict_retries(exhausted: Problem) -> Self {
        Self {
            max: MAX_CONFLICT_RETRIES,
            exhausted,
        }
    }
}

/// What a command decided on the state it read.
pub enum Decision {
    /// Commit these writes and answer with them.
    Commit(Outcome),
    /// Answer without writing: nothing changed, so nothing is recorded
    /// under the key either.
    Answer(Response),
    /// What was read is stale already (e.g. an item taken meanwhile):
    /// decide again, as after a lost race.
    Again,
}

/// The writes of a command (one transaction, one [`StreamWrite`] per
/// stream, each at the version it was read at) and its answer.
pub struct Outcome {
    pub writes: Vec<StreamWrite>,
    /// Values that must stay unique (e.g. an email), claimed in the same
    /// transaction; a taken one is a 409 naming the field.
    pub claims: Vec<Claim>,
    pub status: StatusCode,
    pub body: Value,
    /// The `Location` of the first answer (a repeat replays status and body).
    pub location: Option<String>,
}

impl Decision {
    /// Commit `writes`, answering `status` with `body`.
    pub fn commit(writes: Vec<StreamWrite>, status: StatusCode, body: Value) -> Self {
        Self::Commit(Outcome {
            writes,
            claims: Vec::new(),
            status,
            body,
            location: None,
        })
    }
}

impl WebContext {
    /// Steps 1 and 2: checks the request's Idempotency-Key for `target` and
    /// replays the first answer of a repeat.
    pub async fn begin_command(
        &self,
        headers: &HeaderMap,
        target: &str,
    ) -> Result<Begun<'_>, Problem> {
        let key = idempotency_key(headers)?.map(|key| format!("POST {target} {key}"));
        if let Some(key) = &key
            && let Some(first) = self.store.idempotent_result(key).await?
        {
            return Ok(Begun::Repeat(replayed(first)));
        }
        Ok(Begun::New(Command { ctx: self, key }))
    }

    /// [`Self::begin_command`] for a command on aggregate `id` of `A`,
    /// reading the idempotency record and the aggregate's state in one round
    /// trip: the state (`None`: no such aggregate) is for the first decision.
    pub async fn begin_command_on<A: Aggregate>(
        &self,
        headers: &HeaderMap,
        target: &str,
        id: &str,
    ) -> Result<(Begun<'_>, Option<(A, i64)>), Problem> {
        let key = idempotency_key(headers)?.map(|key| format!("POST {target} {key}"));
        let (first, snapshot) = self.store.command_read(key.as_deref(), A::KIND, id).await?;
        if let Some(first) = first {
            return Ok((Begun::Repeat(replayed(first)), None));
        }
        let state = match snapshot {
            Some((snapshot, version)) => Some((decode::<A>(snapshot, id)?, version)),
            None => None,
        };
        Ok((Begun::New(Command { ctx: self, key }), state))
    }

    /// A whole command: [`Self::begin_command`], then [`Command::decide`].
    pub async fn run_command<Deciding>(
        &self,
        headers: &HeaderMap,
        target: &str,
        attempts: Attempts,
        decide: impl FnMut() -> Deciding,
    ) -> Result<Response, Problem>
    where
        Deciding: Future<Output = Result<Decision, Problem>>,
    {
        match self.begin_command(headers, target).await? {
            Begun::Repeat(first) => Ok(first),
            Begun::New(command) => command.decide(attempts, decide).await,
        }
    }

    /// The state of stream `id` of `A` and its version; `None` when it has
    /// no events. Read from the snapshot its last commit wrote (one row):
    /// the state [`write`] computed by applying that commit's events to the
    /// state before — what replaying the stream gives (`replay`), as long as
    /// `Aggregate::apply` is a pure function of the state and the event.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Option<(A, i64)>, Problem> {
        let Some((snapshot, version)) = self.store.snapshot(A::KIND, id).await? else {
            return Ok(None);
        };
        Ok(Some((decode::<A>(snapshot, id)?, version)))
    }

    /// Like [`Self::load`], with a 404 problem when the stream is empty.
    pub async fn require<A: Aggregate>(&self, id: &str) -> Result<(A, i64), Problem> {
        self.load::<A>(id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no {} {id}", A::KIND)))
    }
}

impl Command<'_> {
    /// Steps 3 to 5: decides, commits, and decides again after a lost race.
    /// `decide` is a closure returning a future, `|| async { ... }` — not
    /// an async closure, whose future cannot be shown to be `Send` (which
    /// an axum handler needs).
    pub async fn decide<Deciding>(
        self,
        attempts: Attempts,
        mut decide: impl FnMut() -> Deciding,
    ) -> Result<Response, Problem>
    where
        Deciding: Future<Output = Result<Decision, Problem>>,
    {
        for _ in 0..attempts.max {
            let outcome = match decide().await? {
                Decision::Commit(outcome) => outcome,
                Decision::Answer(answer) => return Ok(answer),
                Decision::Again => continue,
            };
            if let Some(answer) = self.commit(outcome).await? {
                return Ok(answer);
            }
        }
        Err(attempts.exhausted)
    }

    /// The answer, or `None` when a stream moved and the command must
    /// decide again.
    async fn commit(&self, outcome: Outcome) -> Result<Option<Response>, Problem> {
        let ctx = self.ctx;
        let commit = Commit {
            writes: outcome.writes,
            claims: outcome.claims,
            idempotency: self.key.clone().map(|key| IdempotentResult {
                key,
                status: outcome.status.as_u16(),
                body: outcome.body.clone(),
            }),
            republish: Vec::new(),
        };
        match ctx.store.append(&commit).await {
            Ok(events) => {
                ctx.metrics.events_appended.inc_by(events.len() as u64);
                ctx.relay.notify_one();
                let mut answer = hal::response(outcome.status, outcome.body);
                if let Some(location) = outcome
                    .location
                    .and_then(|l| HeaderValue::from_str(&l).ok())
                {
                    answer.headers_mut().insert(header::LOCATION, location);
                }
                Ok(Some(answer))
            }
            Err(AppendError::Conflict { .. }) => {
                ctx.metrics.concurrency_conflicts.inc();
                Ok(None)
            }
            // A concurrent request with the same key committed first.
            Err(AppendError::DuplicateKey(key)) => {
                Ok(ctx.store.idempotent_result(&key).await?.map(replayed))
            }
            Err(AppendError::ClaimTaken { scope, value }) => {
                let field = scope.rsplit('.').next().unwrap_or(&scope).to_owned();
                Err(Problem {
                    field: Some(field),
                    ..Problem::conflict(format!("{scope} {value:?} is already taken"))
                })
            }
            Err(AppendError::Store(e)) => Err(e.into()),
        }
    }
}

/// The write of `events` to stream `id`, read at `version` in `state`, and
/// the state it leads to (for the answer).
pub fn write<A: Aggregate>(
    id: &str,
    state: &A,
    version: i64,
    events: Vec<NewEvent>,
) -> (StreamWrite, A) {
    let mut next = state.clone();
    for (i, e) in events.iter().enumerate() {
        next.apply(&e.at_version(A::KIND, id, version + i as i64 + 1));
    }
    let write = StreamWrite {
        aggregate_type: A::KIND.to_owned(),
        aggregate_id: id.to_owned(),
        expected_version: version,
        events,
        snapshot: serde_json::to_value(&next).unwrap_or(Value::Null),
        lookup: next.lookup(),
        in_flight: next.in_flight().map(str::to_owned),
    };
    (write, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key(key: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(key).unwrap());
        headers
    }

    #[test]
    fn a_key_of_1_to_512_visible_ascii_characters_is_taken_as_sent() {
        assert_eq!(idempotency_key(&HeaderMap::new()), Ok(None));
        assert_eq!(idempotency_key(&with_key(b"k-42")), Ok(Some("k-42")));
        let longest = "k".repeat(512);
        assert_eq!(
            idempotency_key(&with_key(longest.as_bytes())),
            Ok(Some(longest.as_str()))
        );
    }

    #[test]
    fn an_empty_too_long_or_non_ascii_key_is_a_400_naming_the_header() {
        for key in [&b""[..], "k".repeat(513).as_bytes(), "schlüssel".as_bytes()] {
            let problem = idempotency_key(&with_key(key)).unwrap_err();
            assert_eq!(problem.status, StatusCode::BAD_REQUEST);
            assert_eq!(problem.field.as_deref(), Some("Idempotency-Key"));
            assert_eq!(problem.detail, "must be 1 to 512 visible ASCII characters");
        }
    }
}
