//! `worker.autoscale`: a worker role that follows its backlog. The
//! operator decides from the broker's counts ([`crate::autoscale`]) or, with
//! `engine: KEDA`, emits a KEDA `ScaledObject` that decides instead.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Replicas a worker starts with and goes back to without other evidence (`minReplicas` default).
pub const DEFAULT_MIN_REPLICAS: i32 = 1;
/// Seconds a lower recommendation must hold before a scale-down (`scaleDown.windowSeconds` default).
pub const DEFAULT_SCALE_DOWN_WINDOW_SECONDS: i32 = 60;
/// Seconds a higher recommendation must hold before a scale-up (`scaleUp.windowSeconds` default).
pub const DEFAULT_SCALE_UP_WINDOW_SECONDS: i32 = 0;
/// Replicas added at most per decision (`scaleUp.maxStep` default).
pub const DEFAULT_SCALE_UP_STEP: i32 = 4;
/// Replicas removed at most per decision (`scaleDown.maxStep` default).
pub const DEFAULT_SCALE_DOWN_STEP: i32 = 2;

/// Who decides the replicas of an autoscaled worker.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AutoscaleEngine {
    /// The operator reads the broker's counts and writes the Deployment's replicas.
    #[default]
    Operator,
    /// The operator emits a KEDA ScaledObject (a rabbitmq trigger per consumer group queue)
    /// and a TriggerAuthentication; KEDA, installed in the cluster, decides.
    #[serde(rename = "KEDA")]
    Keda,
}

/// How fast replicas may follow a recommendation in one direction.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRule {
    /// Seconds a recommendation must have held before replicas move this way: up uses the lowest
    /// recommendation of the window, down the highest (defaults: up 0, down 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub window_seconds: Option<i32>,

    /// Replicas added (up, default 4) or removed (down, default 2) at most per decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_step: Option<i32>,
}

/// Scale a worker role on its backlog: the messages ready and unacknowledged in the queues of
/// its consumer groups. `worker.replicas` is then the starting point.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.minReplicas) ? self.minReplicas : 1) <= self.maxReplicas",
     "message": "minReplicas (default 1) must not exceed maxReplicas", "fieldPath": ".minReplicas"},
    {"rule": "has(self.backlogPerReplica) || has(self.drainSeconds)",
     "message": "set backlogPerReplica, drainSeconds or both", "reason": "FieldValueRequired"},
    {"rule": "!has(self.engine) || self.engine != 'KEDA' || has(self.backlogPerReplica)",
     "message": "engine KEDA scales on backlogPerReplica (KEDA's rabbitmq trigger has no time to drain)", "fieldPath": ".backlogPerReplica", "reason": "FieldValueRequired"},
]))]
pub struct Autoscale {
    /// Operator (default) or KEDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<AutoscaleEngine>,

    /// Fewest replicas (default 1). 0 scales to zero once every queue of the role is empty and
    /// nothing is unacknowledged; the first message wakes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_replicas: Option<i32>,

    /// Most replicas.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,

    /// Target messages (ready + unacknowledged) per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub backlog_per_replica: Option<i32>,

    /// Target seconds to drain the backlog at the rate one replica delivers (measured by the
    /// broker's management API; without it only backlogPerReplica counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub drain_seconds: Option<i32>,

    /// How replicas go up (default: no window, at most 4 more per decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRule>,

    /// How replicas go down (default: a 60 s window, at most 2 fewer per decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRule>,
}

impl Autoscale {
    pub fn engine(&self) -> AutoscaleEngine {
        self.engine.unwrap_or_default()
    }

    pub fn min(&self) -> i32 {
        self.min_replicas.unwrap_or(DEFAULT_MIN_REPLICAS)
    }

    pub fn up_window_seconds(&self) -> i32 {
        self.scale_up
            .as_ref()
            .and_then(|r| r.window_seconds)
            .unwrap_or(DEFAULT_SCALE_UP_WINDOW_SECONDS)
    }

    pub fn down_window_seconds(&self) -> i32 {
        self.scale_down
            .as_ref()
            .and_then(|r| r.window_seconds)
            .unwrap_or(DEFAULT_SCALE_DOWN_WINDOW_SECONDS)
    }

    pub fn up_step(&self) -> i32 {
        self.scale_up
            .as_ref()
            .and_then(|r| r.max_step)
            .unwrap_or(DEFAULT_SCALE_UP_STEP)
    }

    pub fn down_step(&self) -> i32 {
        self.scale_down
            .as_ref()
            .and_then(|r| r.max_step)
            .unwrap_or(DEFAULT_SCALE_DOWN_STEP)
    }

    /// The replicas a worker starts with: `worker.replicas` (default 1) within the bounds.
    pub fn starting(&self, replicas: Option<i32>) -> i32 {
        replicas
            .unwrap_or(1)
            .clamp(self.min(), self.max_replicas.max(self.min()))
    }
}

/// The autoscaler's last word on one worker role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscaleStatus {
    /// App whose worker role is autoscaled.
    pub app: String,
    /// Operator or KEDA.
    pub engine: AutoscaleEngine,
    /// Replicas the autoscaler set (Operator engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    /// Replicas the Deployment had when the decision was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    /// What the backlog alone asks for, before windows and steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_replicas: Option<i32>,
    /// Messages ready + unacknowledged in the role's queues at the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// Messages unacknowledged at the decision, when the broker reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unacknowledged: Option<i64>,
    /// Messages delivered per second by the role, when the broker reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
    /// Why the replicas are what they are, e.g. `backlog 2000 > 100/replica: 1 -> 5 (step 4)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the replicas last changed (or the KEDA objects were last applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}
