//! The custom resources of eventflow (`eventflow.dev/v1alpha1`): [`Stream`],
//! [`EventBroker`], [`AppRegistration`] and [`DeadLetterRedrive`]. Admission does most of the validation: every string
//! and list is bounded (so CEL rules have a bounded cost), CEL rules name
//! the offending field, and names are short enough that every object the
//! operator derives from them fits a 63-character DNS label.

mod autoscale;
mod broker;
mod condition;
mod network;
mod redrive;
mod registration;
mod spring;
mod stream;

pub use autoscale::{
    Autoscale, AutoscaleEngine, AutoscaleStatus, DEFAULT_MIN_REPLICAS, DEFAULT_SCALE_DOWN_STEP,
    DEFAULT_SCALE_DOWN_WINDOW_SECONDS, DEFAULT_SCALE_UP_STEP, DEFAULT_SCALE_UP_WINDOW_SECONDS,
    ScalingRule,
};
pub use broker::{
    BrokerPhase, BrokerTls, ConnectionSecret, EventBroker, EventBrokerSpec, EventBrokerStatus,
    ExternalBroker, ManagedBroker, Storage,
};
pub use condition::{ConditionView, conditions_schema, is_true, set_condition};
pub use network::StreamNetwork;
pub use redrive::{
    DEFAULT_INSPECT, DeadLetter, DeadLetterRedrive, DeadLetterRedriveSpec, DeadLetterRedriveStatus,
    MAX_INSPECT, MAX_ROUTING_KEYS, PREVIEW_BYTES, RedriveMode, RedrivePhase,
};
pub use registration::{
    APP_TYPES, AppRegistration, AppRegistrationSpec, AppRuntime, RegisteredSpring,
};
pub use spring::{DEFAULT_INPUT, DEFAULT_OUTPUT, SpringApp, SpringOutput};
pub use stream::{
    App, DEFAULT_DRAIN_TIMEOUT_SECONDS, DEFAULT_REVISION_HISTORY_LIMIT, DeletionPolicy,
    DestinationStatus, GroupStatus, Packaging, Stream, StreamPhase, StreamSpec, StreamStatus,
    Subscribe, WebRole, WorkerRole, WorkloadStatus,
};

/// API group of every eventflow resource.
pub const GROUP: &str = "eventflow.dev";

/// Longest Stream name: `<stream>-<app>-worker` must fit 63 characters with
/// the longest app name ([`MAX_APP_NAME`]).
pub const MAX_STREAM_NAME: usize = 30;
/// Longest app name (30 + 1 + 25 + 7 = 63).
pub const MAX_APP_NAME: usize = 25;
/// Longest EventBroker name: a StatefulSet's pods carry a
/// `controller-revision-hash` label of `<name>-<10 chars>`, so 52 is the
/// real limit; 40 leaves room for `-erlang-cookie` and `-credentials`.
pub const MAX_BROKER_NAME: usize = 40;
/// Longest destination or group name (queue names are `<ns>.<dest>.<group>.retry`,
/// well under AMQP's 255 bytes).
pub const MAX_DESTINATION_NAME: usize = 63;

/// A DNS-1035 label (starts with a letter): valid for Services and Deployments alike.
pub(crate) const DNS_LABEL_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

/// Whether `s` is a DNS-1035 label ([`DNS_LABEL_PATTERN`]) of at most `max` characters.
pub fn is_dns_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}
