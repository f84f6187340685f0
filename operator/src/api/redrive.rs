//! `DeadLetterRedrive`: one request to put the dead letters of one consumer
//! group back into the group's queue (`mode: Move`), or only to list them
//! (`mode: Inspect`). The operator does the moving (see
//! [`crate::controller::redrive`]); `kubectl eventflow dlq` writes these.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DNS_LABEL_PATTERN, MAX_DESTINATION_NAME, MAX_STREAM_NAME};

/// Longest listing of an inspection (and its default is [`DEFAULT_INSPECT`]).
pub const MAX_INSPECT: i64 = 100;
/// Messages an inspection lists when `maxMessages` is not set.
pub const DEFAULT_INSPECT: i64 = 20;
/// Bytes of a message body shown in an inspection.
pub const PREVIEW_BYTES: usize = 512;
/// Routing-key selectors of one redrive.
pub const MAX_ROUTING_KEYS: usize = 16;

/// Puts a consumer group's dead-lettered messages back into its queue, or lists them.
// rustfmt splits the print columns over lines, where clippy takes their
// shared `type_` for duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "eventflow.dev",
    version = "v1alpha1",
    kind = "DeadLetterRedrive",
    plural = "deadletterredrives",
    namespaced,
    status = "DeadLetterRedriveStatus",
    shortname = "efdlr",
    category = "eventflow",
    doc = "Puts the dead letters of one consumer group of a Stream back into the group's queue (mode Move), or lists them (mode Inspect).",
    printcolumn(
        name = "Stream",
        type_ = "string",
        json_path = ".spec.stream",
        description = "Stream of the consumer group"
    ),
    printcolumn(
        name = "Destination",
        type_ = "string",
        json_path = ".spec.destination",
        description = "Destination the group consumes"
    ),
    printcolumn(
        name = "Group",
        type_ = "string",
        json_path = ".spec.group",
        description = "Consumer group"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "Move or Inspect"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Pending, Running, Succeeded or Failed"
    ),
    printcolumn(
        name = "Moved",
        type_ = "integer",
        json_path = ".status.moved",
        description = "Messages put back into the group's queue"
    ),
    printcolumn(
        name = "Skipped",
        type_ = "integer",
        json_path = ".status.skipped",
        description = "Messages left in the DLQ because they were not selected"
    ),
    printcolumn(
        name = "Left",
        type_ = "integer",
        json_path = ".status.remaining",
        description = "Messages in the DLQ when the redrive ended"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self == oldSelf", "message": "spec is immutable: create a new DeadLetterRedrive"},
    {"rule": "!has(self.mode) || self.mode != 'Inspect' || !has(self.maxMessages) || self.maxMessages <= 100",
     "message": "an inspection lists at most 100 messages", "fieldPath": ".maxMessages"},
]))]
pub struct DeadLetterRedriveSpec {
    /// Stream (in this namespace) one of whose apps consumes for the group.
    #[schemars(length(min = 1, max = MAX_STREAM_NAME), pattern(DNS_LABEL_PATTERN))]
    pub stream: String,

    /// Destination the group consumes.
    #[schemars(length(min = 1, max = MAX_DESTINATION_NAME), pattern(DNS_LABEL_PATTERN))]
    pub destination: String,

    /// Consumer group whose dead-letter queue (`<ns>.<destination>.<group>.dlq`) is read.
    #[schemars(length(min = 1, max = MAX_DESTINATION_NAME), pattern(DNS_LABEL_PATTERN))]
    pub group: String,

    /// Move (default): put the selected messages back into the group's queue. Inspect: move
    /// nothing, list up to `maxMessages` of them in status.
    #[serde(default)]
    pub mode: RedriveMode,

    /// Move: at most this many messages (default: every selected message). Inspect: list at
    /// most this many (default 20, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub max_messages: Option<i64>,

    /// Only messages whose original routing key (`<aggregate>.<EVENT>`) matches one of these
    /// AMQP topic patterns (`*` one word, `#` zero or more words); empty selects every message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 255),
            pattern(r"^[A-Za-z0-9_*#-]+(\.[A-Za-z0-9_*#-]+)*$")
        )
    )]
    pub routing_keys: Vec<String>,
}

/// What a redrive does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RedriveMode {
    /// Put the selected messages back into the group's queue.
    #[default]
    Move,
    /// Move nothing; list the selected messages in status.
    Inspect,
}

/// Lifecycle of a redrive.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RedrivePhase {
    /// Not started yet.
    #[default]
    Pending,
    /// Moving (or reading) messages.
    Running,
    /// Done: see the counts.
    Succeeded,
    /// Could not be done: see the message.
    Failed,
}

impl RedrivePhase {
    /// Whether the operator is done with the redrive.
    pub fn finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Observed state of a redrive.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterRedriveStatus {
    /// Pending, Running, Succeeded or Failed.
    #[serde(default)]
    pub phase: RedrivePhase,

    /// What happened, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The group's dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,

    /// The group's queue the messages are put back into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,

    /// Messages put back into the group's queue (committed on the broker).
    #[serde(default)]
    pub moved: i64,

    /// Messages of the last pass over the DLQ left there because they were not selected (or
    /// were already put back once by this redrive and dead-lettered again).
    #[serde(default)]
    pub skipped: i64,

    /// Messages in the DLQ when the redrive ended (or at its last pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,

    /// Messages whose move was being committed when an operator stopped: each is either in the
    /// group's queue or still in the DLQ, never both, never lost; they count against
    /// `maxMessages`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_doubt: i64,

    /// Messages of the batch being committed right now (moved into `moved` once the broker
    /// confirms; an operator that finds it set after a restart counts it as `inDoubt`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub committing: i64,

    /// Inspect: the selected messages, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<DeadLetter>,

    /// When the operator started the redrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When it succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Complete (True once it succeeded or failed, with the reason).
    #[serde(default)]
    #[schemars(schema_with = "super::conditions_schema")]
    pub conditions: Vec<Condition>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One dead-lettered message, as an inspection lists it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Routing key the message was first published with (the one selectors match).
    pub routing_key: String,
    /// AMQP message id (the CloudEvent id of an eventflow event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// AMQP type (the CloudEvent type of an eventflow event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Failed attempts an eventflow consumer recorded (`x-eventflow-attempt` + 1); absent when
    /// it failed on its first attempt, or its consumer retries in process (Spring Cloud Stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// Why the broker dead-lettered it (`rejected`, `expired`, `maxlen`, `delivery_limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Queue it was dead-lettered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_from: Option<String>,
    /// When it was dead-lettered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_at: Option<Time>,
    /// Times a redrive already put it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrives: Option<i64>,
    /// Body size in bytes.
    pub size: i64,
    /// The first 512 bytes of the body (UTF-8, lossy), `…` when cut.
    pub preview: String,
}
