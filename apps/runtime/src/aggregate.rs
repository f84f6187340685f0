//! The generic aggregate: a state machine rebuilt from its events. An app
//! describes each aggregate type once (its name, how it is created, how each
//! event changes it, which commands are valid in which state and what events
//! they produce); the runtime does the rest — store, HTTP, links, OpenAPI.
//! Deciding is pure: `create` and `execute` see only the state and the input,
//! so a command that lost a race is simply decided again on the new state.
//!
//! Imports only the event values ([`crate::event`]); the store depends on
//! this module (to key snapshots by [`Lookup`]), never the reverse.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::event::{NewEvent, RecordedEvent, is_runtime_event};

/// Why a command was refused; each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The state forbids the command now (409).
    #[error("{command} is not allowed while the {kind} is {state}")]
    Forbidden {
        kind: &'static str,
        command: String,
        state: String,
    },
    /// The input is invalid (400, naming the field).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The command exists but needs something not deployed (501).
    #[error("{0}")]
    NotImplemented(String),
}

impl DomainError {
    pub fn invalid(field: &str, reason: &str) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// A secondary key an aggregate can be found by, in two parts, each
/// indexed: `group` (e.g. a warehouse) and `key` within it (e.g. a product
/// and whether the item is available). See `EventStore::lookup` and
/// `EventStore::lookup_counts`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub group: String,
    pub key: String,
}

impl Lookup {
    pub fn new(group: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            key: key.into(),
        }
    }
}

/// What creating an aggregate writes.
#[derive(Clone, Debug, Default)]
pub struct Creation {
    pub events: Vec<NewEvent>,
    /// Values that must be unique within their scope: `(scope, value)`.
    pub claims: Vec<(String, String)>,
}

/// OpenAPI schemas of an aggregate (JSON Schema objects).
#[derive(Clone, Debug)]
pub struct AggregateSchemas {
    /// The resource's own fields (links are added by the runtime).
    pub resource: Value,
    /// The body of `POST /v1/{collection}`.
    pub create: Value,
    /// The payload of its events.
    pub event_payload: Value,
    pub event_types: &'static [&'static str],
}

/// One aggregate type. The state is the type itself: `Default` is the state
/// before the first event, `Serialize` gives the resource's fields (and the
/// listing snapshot, read back with `Deserialize`).
pub trait Aggregate:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Singular name: routing keys (`account.ACCOUNT_CREATED`), CloudEvent
    /// types and the link relation from an event to its aggregate.
    const KIND: &'static str;
    /// Path segment of the collection: `/v1/{COLLECTION}`.
    const COLLECTION: &'static str;
    /// Every command the aggregate knows, valid now or not.
    const COMMANDS: &'static [&'static str];
    /// Body of the create request.
    type Create: DeserializeOwned + Send + 'static;

    /// Decides the events that create the aggregate `id`.
    fn create(id: &str, input: Self::Create) -> Result<Creation, DomainError>;
    /// Folds one event into the state.
    fn apply(&mut self, event: &RecordedEvent);
    /// The commands valid in the current state.
    fn commands(&self) -> Vec<&'static str>;
    /// Decides the events of `command` (one of [`Self::COMMANDS`]); `input`
    /// is the request body, `null` when empty.
    fn execute(&self, command: &str, input: &Value) -> Result<Vec<NewEvent>, DomainError>;
    /// Human-readable state for error messages (e.g. `ACTIVE`).
    fn status(&self) -> String;
    /// Links to related resources beyond self/events/commands, as
    /// `(relation, absolute href)`; `base` is the request's base URL.
    fn relations(&self, _base: &str) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The key this state can be found by without reading every snapshot
    /// of its type (`EventStore::lookup`, `EventStore::lookup_counts`);
    /// written with every snapshot, so it follows the state. `None`: not
    /// findable (the default).
    fn lookup(&self) -> Option<Lookup> {
        None
    }
    /// `Some(event type)` while this state waits for a next saga step that
    /// nobody but the saga will take (another context's report, a
    /// function of a worker): the type of the event whose delivery drives
    /// that step. Functions act on the state as it is now and their
    /// commands carry idempotency keys, so publishing the latest event of
    /// that type again re-drives the step without doubling anything; the
    /// web role does so when the state made no progress for
    /// `EVENTFLOW_STALL_AFTER` (`crate::redrive`). `None` (the default):
    /// final, or moved on by people, not by the saga.
    fn in_flight(&self) -> Option<&'static str> {
        None
    }
    fn schemas() -> AggregateSchemas;
}

/// Rebuilds the state from its events; `None` when there are none. The
/// runtime's own events ([`crate::event::STEP_REDRIVEN`], ...) are not
/// folded: they change no state, and no `apply` has to know them.
pub fn replay<A: Aggregate>(events: &[RecordedEvent]) -> Option<A> {
    if events.is_empty() {
        return None;
    }
    let mut state = A::default();
    for e in events.iter().filter(|e| !is_runtime_event(&e.event_type)) {
        state.apply(e);
    }
    Some(state)
}

/// The forbidden-transition error of `state` for `command`.
pub fn forbidden<A: Aggregate>(state: &A, command: &str) -> DomainError {
    DomainError::Forbidden {
        kind: A::KIND,
        command: command.to_owned(),
        state: state.status(),
    }
}
