//! Prometheus metrics of an app (served at `/metrics` on the admin address).
//! Labels are low-cardinality on purpose: an outcome, never an id.

use std::sync::{Arc, LazyLock};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// What happened to a consumed message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

/// An HTTP request: the route template (never the concrete path) and the
/// status class (`2xx`..`5xx`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRequest {
    pub route: String,
    pub status: &'static str,
}

/// A saga participant's aggregate type (`order`, `payment`, ...): a few
/// per app, never an id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AggregateKind {
    pub aggregate: String,
}

/// A request the process sent to another role (an HTTP method).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerRequest {
    pub method: &'static str,
}

/// Requests sent to other roles by the process's one HAL client
/// (`crate::hypermedia::client`), by method: process-wide, as the client is.
#[derive(Clone, Default)]
pub struct PeerRequests(Family<PeerRequest, Counter>);

impl PeerRequests {
    pub fn sent(&self, method: &'static str) {
        self.0.get_or_create(&PeerRequest { method }).inc();
    }
}

/// The process's [`PeerRequests`]; every [`Metrics`] registry shows it.
pub static PEER_REQUESTS: LazyLock<PeerRequests> = LazyLock::new(PeerRequests::default);

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub events_appended: Counter,
    pub events_published: Counter,
    pub outbox_pending: Gauge,
    pub commands_refused: Counter,
    pub concurrency_conflicts: Counter,
    /// `ok`, `ignored`, `retried`, `dead_lettered`; `transient_retry` (one
    /// per in-process retry of a message whose dependency is unavailable)
    /// and `requeued` (such a message given back unspent on shutdown).
    pub messages: Family<Outcome, Counter>,
    /// Messages held in process right now, waiting for an unavailable
    /// dependency before their handler runs again.
    pub messages_waiting: Gauge,
    /// Messages a consumer took and has not settled yet (handling them).
    pub messages_in_hand: Gauge,
    pub http_requests: Family<HttpRequest, Counter>,
    /// 1 while the broker link is up (topology checked), else 0.
    pub broker_connected: Gauge,
    /// Broker connections re-established after a loss.
    pub broker_reconnects: Counter,
    /// Stalled saga steps re-driven, by aggregate type.
    pub saga_redrives: Family<AggregateKind, Counter>,
    /// Stalled saga steps given up after their last allowed re-drive.
    pub saga_steps_abandoned: Family<AggregateKind, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("eventflow");
        let m = Self {
            registry: Arc::new(Registry::default()),
            events_appended: Counter::default(),
            events_published: Counter::default(),
            outbox_pending: Gauge::default(),
            commands_refused: Counter::default(),
            concurrency_conflicts: Counter::default(),
            messages: Family::default(),
            messages_waiting: Gauge::default(),
            messages_in_hand: Gauge::default(),
            http_requests: Family::default(),
            broker_connected: Gauge::default(),
            broker_reconnects: Counter::default(),
            saga_redrives: Family::default(),
            saga_steps_abandoned: Family::default(),
        };
        r.register(
            "events_appended",
            "Events committed to the store",
            m.events_appended.clone(),
        );
        r.register(
            "events_published",
            "Events confirmed by the broker",
            m.events_published.clone(),
        );
        r.register(
            "outbox_pending",
            "Committed events not yet confirmed by the broker",
            m.outbox_pending.clone(),
        );
        r.register(
            "commands_refused",
            "Commands refused by the state machine",
            m.commands_refused.clone(),
        );
        r.register(
            "concurrency_conflicts",
            "Commands decided again after losing an optimistic-concurrency race",
            m.concurrency_conflicts.clone(),
        );
        r.register(
            "messages",
            "Consumed messages by outcome",
            m.messages.clone(),
        );
        r.register(
            "messages_waiting",
            "Messages held in process until an unavailable dependency answers again",
            m.messages_waiting.clone(),
        );
        r.register(
            "messages_in_hand",
            "Messages taken from the broker and not settled yet",
            m.messages_in_hand.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route template and status class",
            m.http_requests.clone(),
        );
        r.register(
            "peer_requests",
            "HTTP requests this process sent to other roles (following links, running commands), by method",
            PEER_REQUESTS.0.clone(),
        );
        r.register(
            "broker_connected",
            "1 while the broker connection is up and its topology checked, else 0",
            m.broker_connected.clone(),
        );
        r.register(
            "broker_reconnects",
            "Broker connections re-established after a loss",
            m.broker_reconnects.clone(),
        );
        r.register(
            "saga_redrives",
            "Saga steps re-driven after waiting longer than EVENTFLOW_STALL_AFTER, by aggregate type",
            m.saga_redrives.clone(),
        );
        r.register(
            "saga_steps_abandoned",
            "Stalled saga steps no longer re-driven (their re-drives ran out), by aggregate type",
            m.saga_steps_abandoned.clone(),
        );
        Self {
            registry: Arc::new(r),
            ..m
        }
    }
}

impl Metrics {
    pub fn message(&self, outcome: &'static str) {
        self.messages.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn saga_redriven(&self, aggregate: &str) {
        self.saga_redrives
            .get_or_create(&AggregateKind {
                aggregate: aggregate.to_owned(),
            })
            .inc();
    }

    pub fn saga_step_abandoned(&self, aggregate: &str) {
        self.saga_steps_abandoned
            .get_or_create(&AggregateKind {
                aggregate: aggregate.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_the_prefix_and_outcome_label() {
        let m = Metrics::default();
        m.events_appended.inc_by(3);
        m.message("dead_lettered");
        m.broker_reconnects.inc();
        let text = m.render();
        assert!(text.contains("eventflow_broker_connected 0"), "{text}");
        assert!(
            text.contains("eventflow_broker_reconnects_total 1"),
            "{text}"
        );
        assert!(text.contains("eventflow_events_appended_total 3"), "{text}");
        assert!(
            text.contains("eventflow_messages_total{outcome=\"dead_lettered\"} 1"),
            "{text}"
        );
    }
}
