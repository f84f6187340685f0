//! Prometheus metrics of the operator. Labels are low-cardinality on
//! purpose: the kind and a short error reason, never an object name —
//! except the per consumer group gauges of [`crate::backlog::metrics`]
//! (one series per group of each Stream, removed with the Stream).

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
    reason: &'static str,
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~20 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.005, 2.0, 12,
    ))
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<KindLabels, Histogram, fn() -> Histogram>,
    leader: Gauge,
    /// Backlog and dead letters per consumer group (see [`crate::backlog`]).
    pub groups: crate::backlog::metrics::GroupGauges,
    /// Desired and current replicas of autoscaled workers (see [`crate::autoscale`]).
    pub autoscale: crate::autoscale::metrics::AutoscaleGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("eventflow_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles started, by kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by kind and short reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, by kind",
            durations.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader Lease",
            leader.clone(),
        );
        let groups = crate::backlog::metrics::GroupGauges::register(&mut registry);
        let autoscale = crate::autoscale::metrics::AutoscaleGauges::register(&mut registry);
        Self {
            registry: Arc::new(registry),
            reconciles,
            errors,
            durations,
            leader,
            groups,
            autoscale,
        }
    }

    pub fn reconciled(&self, kind: &'static str) {
        self.reconciles.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn failed(&self, kind: &'static str, reason: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { kind, reason })
            .inc();
    }

    pub fn observe(&self, kind: &'static str, elapsed: Duration) {
        self.durations
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_reconciles_and_errors_by_kind_and_reason() {
        let m = Metrics::new();
        m.reconciled("Stream");
        m.reconciled("Stream");
        m.failed("Stream", "BrokerUnreachable");
        m.observe("Stream", Duration::from_millis(20));
        let text = m.render();
        assert!(
            text.contains(r#"eventflow_operator_reconciles_total{kind="Stream"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"eventflow_operator_reconcile_errors_total{kind="Stream",reason="BrokerUnreachable"} 1"#), "{text}");
        assert!(
            text.contains("eventflow_operator_reconcile_duration_seconds_bucket"),
            "{text}"
        );
    }
}
