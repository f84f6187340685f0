//! Per autoscaled worker gauges (labels namespace, stream, app): the
//! replicas the autoscaler wants, those the Deployment has, and what the
//! backlog alone recommends; a counter of the scale changes made.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub namespace: String,
    pub stream: String,
    pub app: String,
}

#[derive(Clone, Default)]
pub struct AutoscaleGauges {
    desired: Family<RoleLabels, Gauge>,
    current: Family<RoleLabels, Gauge>,
    recommended: Family<RoleLabels, Gauge>,
    scaled: Family<RoleLabels, Counter>,
}

impl AutoscaleGauges {
    pub fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        for (name, help, family) in [
            (
                "autoscale_desired_replicas",
                "Replicas the autoscaler decided for a worker role",
                &g.desired,
            ),
            (
                "autoscale_current_replicas",
                "Replicas a worker role's Deployment had at the decision",
                &g.current,
            ),
            (
                "autoscale_recommended_replicas",
                "Replicas the backlog alone asks for, before windows and steps",
                &g.recommended,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "autoscale_scale_changes",
            "Changes of a worker role's replicas made by the autoscaler",
            g.scaled.clone(),
        );
        g
    }

    pub fn set(&self, l: &RoleLabels, desired: u32, current: u32, recommended: Option<u32>) {
        self.desired.get_or_create(l).set(desired.into());
        self.current.get_or_create(l).set(current.into());
        match recommended {
            Some(r) => {
                self.recommended.get_or_create(l).set(r.into());
            }
            None => {
                self.recommended.remove(l);
            }
        }
    }

    pub fn scaled(&self, l: &RoleLabels) {
        self.scaled.get_or_create(l).inc();
    }

    /// Removes a role's series (no longer autoscaled, or its Stream is gone).
    pub fn forget(&self, l: &RoleLabels) {
        self.desired.remove(l);
        self.current.remove(l);
        self.recommended.remove(l);
        self.scaled.remove(l);
    }
}
