//! One look at the autoscaled worker roles of one Stream: the figures of
//! each role's queues, the decision, the drain before zero, the scale, the
//! Event and the gauges.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time};
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};

use super::{
    MANAGER, autoscale_of,
    decide::{Decision, History, Policy, Sample, decide},
    metrics::RoleLabels,
    scale,
};
use crate::{
    api::{App, Autoscale, AutoscaleEngine, AutoscaleStatus, Stream},
    backlog::{self, figures::QueueFigures},
    connection::BrokerWiring,
    context::Context,
    naming::{self, Workload},
    resolve::{self, Broker},
    suspend::probe,
};

/// Longest wait for a role's pods to drain before it goes to zero anyway
/// (their SIGTERM handling finishes what is left).
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// One autoscaled worker role: namespace, Stream and app.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct RoleKey {
    pub namespace: String,
    pub stream: String,
    pub app: String,
}

impl RoleKey {
    pub fn new(
        namespace: impl Into<String>,
        stream: impl Into<String>,
        app: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            stream: stream.into(),
            app: app.into(),
        }
    }

    fn labels(&self) -> RoleLabels {
        RoleLabels {
            namespace: self.namespace.clone(),
            stream: self.stream.clone(),
            app: self.app.clone(),
        }
    }
}

/// What is remembered of a role between looks.
#[derive(Default)]
pub(super) struct Memory {
    history: History,
    /// Whether this process applied the role's replicas (owns the field).
    pub(super) applied: bool,
    /// When the pods were first asked to drain before zero.
    draining: Option<Instant>,
    /// When the replicas last changed.
    last_scale: Option<Time>,
}

/// The entries of `status.autoscale` after one look at `stream`'s roles;
/// each role looked at goes into `seen`.
pub(super) async fn look_at_stream(
    ctx: &Context,
    stream: &Stream,
    seen: &mut HashSet<RoleKey>,
) -> Vec<AutoscaleStatus> {
    let namespace = stream.namespace().unwrap_or_default();
    let name = stream.name_any();
    let mut entries: Vec<AutoscaleStatus> = stream
        .spec
        .apps
        .iter()
        .filter(|app| autoscale_of(app, AutoscaleEngine::Keda).is_some())
        .map(|app| keda_entry(&name, app))
        .collect();
    let roles: Vec<(&App, &Autoscale, Workload)> = stream
        .spec
        .apps
        .iter()
        .filter_map(|app| {
            Some((
                app,
                autoscale_of(app, AutoscaleEngine::Operator)?,
                naming::worker_workload(&name, app)?,
            ))
        })
        .collect();
    if roles.is_empty() {
        return entries;
    }
    let previous = |app: &str| {
        stream
            .status
            .iter()
            .flat_map(|s| &s.autoscale)
            .find(|e| e.app == app && e.engine == AutoscaleEngine::Operator)
            .cloned()
    };
    let broker = match resolve::stream_broker(ctx, &namespace, &stream.spec.broker).await {
        Ok(Broker::Found(found)) => match &found.uri {
            Ok(uri) => Some((found.wiring.clone(), uri.clone())),
            Err(_) => None,
        },
        _ => None,
    };
    let groups = backlog::figures::groups(&namespace, &stream.spec.apps);
    for (app, autoscale, workload) in roles {
        let key = RoleKey::new(&namespace, &name, &app.name);
        seen.insert(key.clone());
        let Some(deployment) = deployment(ctx, &namespace, &workload.name).await else {
            // Not created yet: the reconcile's starting point stands.
            entries.extend(previous(&app.name));
            continue;
        };
        let queues: Vec<String> = groups
            .iter()
            .filter(|g| g.app == app.name)
            .map(|g| g.queue.clone())
            .collect();
        let sample = match &broker {
            Some((wiring, uri)) => sample(ctx, &namespace, wiring, uri, &queues).await,
            None => Sample::default(),
        };
        let role = Role {
            key: &key,
            autoscale,
            deployment: &deployment,
            workload: &workload,
        };
        entries.push(role.look(ctx, stream, &sample).await);
    }
    entries
}

fn keda_entry(stream: &str, app: &App) -> AutoscaleStatus {
    let target = naming::worker_workload(stream, app).map_or_else(String::new, |w| w.name);
    AutoscaleStatus {
        app: app.name.clone(),
        engine: AutoscaleEngine::Keda,
        reason: Some(format!("KEDA decides (ScaledObject {target})")),
        ..Default::default()
    }
}

/// The role's Deployment, from the watch cache when there is one.
async fn deployment(ctx: &Context, namespace: &str, name: &str) -> Option<Deployment> {
    if let Some(store) = ctx.deployments.get().filter(|s| resolve::has_listed(s)) {
        return store
            .get(&ObjectRef::new(name).within(namespace))
            .map(|d| d.as_ref().clone());
    }
    Api::<Deployment>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// The role's queues summed: ready over AMQP (exact), unacknowledged and
/// the delivery rate from the management API (when it has them all).
async fn sample(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
    uri: &str,
    queues: &[String],
) -> Sample {
    let exact = backlog::amqp::read(ctx, uri, queues).await;
    let managed = backlog::management_figures(ctx, namespace, wiring, uri, queues).await;
    let managed = match managed {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(namespace, error = %e, "autoscaler: no management figures");
            None
        }
    };
    let sum = |figures: &BTreeMap<String, QueueFigures>, f: fn(&QueueFigures) -> Option<i64>| {
        // A queue not declared yet holds nothing.
        queues.iter().try_fold(0i64, |acc, q| match figures.get(q) {
            None => Some(acc),
            Some(fig) => f(fig).map(|v| acc + v),
        })
    };
    let ready = match (&exact, &managed) {
        (Ok(exact), _) => sum(exact, |f| f.ready),
        (Err(_), Some(m)) => sum(m, |f| f.ready),
        (Err(_), None) => None,
    };
    let unacknowledged = managed.as_ref().and_then(|m| sum(m, |f| f.unacknowledged));
    let deliver_rate = managed.as_ref().and_then(|m| {
        let rates: Vec<f64> = m.values().filter_map(|f| f.deliver_rate).collect();
        (!rates.is_empty()).then(|| rates.iter().sum())
    });
    Sample {
        ready,
        unacknowledged,
        deliver_rate,
    }
}

/// One role of one look.
struct Role<'a> {
    key: &'a RoleKey,
    autoscale: &'a Autoscale,
    deployment: &'a Deployment,
    workload: &'a Workload,
}

impl Role<'_> {
    fn current(&self) -> u32 {
        let replicas = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        u32::try_from(replicas).unwrap_or(0)
    }

    /// Decides, drains before zero, scales; the role's status entry.
    async fn look(&self, ctx: &Context, stream: &Stream, sample: &Sample) -> AutoscaleStatus {
        let current = self.current();
        let policy = Policy::from(self.autoscale);
        let now = ctx.autoscaler.now();
        let (mut decision, draining, applied) = {
            let mut roles = ctx
                .autoscaler
                .roles
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let memory = roles.entry(self.key.clone()).or_default();
            if current == 0 {
                memory.draining = None;
            }
            let d = decide(&policy, &mut memory.history, now, current, sample);
            (d, memory.draining, memory.applied)
        };
        // To zero only once drained; a drain that began is finished (its pods
        // consume nothing more), whatever the backlog says meanwhile.
        if current > 0 && (decision.replicas == 0 || draining.is_some()) {
            let began = draining.unwrap_or_else(Instant::now);
            self.remember(ctx, |m| m.draining = Some(began));
            let drain =
                probe::workload(ctx, &self.key.namespace, self.deployment, self.workload).await;
            let before = decision.reason.clone();
            // The decision said zero, or an earlier one did and began the drain.
            let committed = if decision.replicas == 0 {
                String::new()
            } else {
                format!("; a drain before zero began: {current} -> 0")
            };
            if drain.left.is_empty() {
                decision.replicas = 0;
                decision.reason = format!("{before}{committed}, pods drained");
            } else if began.elapsed() >= DRAIN_LIMIT {
                decision.replicas = 0;
                decision.reason = format!(
                    "{before}{committed}, drain not done after {}s ({})",
                    DRAIN_LIMIT.as_secs(),
                    drain.left.join("; ")
                );
            } else {
                decision.replicas = current;
                decision.reason =
                    format!("{before}; draining before zero: {}", drain.left.join("; "));
            }
        }
        let labels = self.key.labels();
        let changed = decision.replicas != current;
        if changed || !applied {
            match scale(
                ctx,
                &self.key.namespace,
                &self.workload.name,
                decision.replicas,
            )
            .await
            {
                Ok(_) => {
                    self.remember(ctx, |m| m.applied = true);
                    if changed {
                        self.scaled(ctx, stream, current, &decision, &labels).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(deployment = self.workload.name, error = %e, "autoscaler could not scale");
                    decision.replicas = current;
                    decision.reason = format!("{}; could not scale: {e}", decision.reason);
                }
            }
        }
        ctx.metrics
            .autoscale
            .set(&labels, decision.replicas, current, decision.recommendation);
        let last_scale = self.recall(ctx, |m| m.last_scale.clone()).or_else(|| {
            stream
                .status
                .iter()
                .flat_map(|s| &s.autoscale)
                .find(|e| e.app == self.key.app)
                .and_then(|e| e.last_scale_time.clone())
        });
        AutoscaleStatus {
            app: self.key.app.clone(),
            engine: AutoscaleEngine::Operator,
            desired_replicas: i32::try_from(decision.replicas).ok(),
            current_replicas: i32::try_from(current).ok(),
            recommended_replicas: decision.recommendation.and_then(|r| i32::try_from(r).ok()),
            backlog: sample.backlog(),
            unacknowledged: sample.unacknowledged,
            deliver_rate: sample.deliver_rate.map(|r| (r * 10.0).round() / 10.0),
            reason: Some(decision.reason),
            last_scale_time: last_scale,
        }
    }

    /// A change made: the Event, the counter, the time.
    async fn scaled(
        &self,
        ctx: &Context,
        stream: &Stream,
        from: u32,
        d: &Decision,
        labels: &RoleLabels,
    ) {
        let now = Time(jiff::Timestamp::now());
        self.remember(ctx, |m| {
            m.last_scale = Some(now.clone());
            if d.replicas == 0 {
                m.draining = None;
            }
        });
        ctx.metrics.autoscale.scaled(labels);
        tracing::info!(
            deployment = self.workload.name,
            replicas = d.replicas,
            reason = d.reason,
            manager = MANAGER,
            "autoscaled"
        );
        // One Event per transition (a repeat counts in its series).
        ctx.event_of(
            stream,
            false,
            "Scaled",
            &format!("Scale{from}To{}", d.replicas),
            format!("worker of {}: {}", self.key.app, d.reason),
        )
        .await;
    }

    fn remember(&self, ctx: &Context, f: impl FnOnce(&mut Memory)) {
        let mut roles = ctx
            .autoscaler
            .roles
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(roles.entry(self.key.clone()).or_default());
    }

    fn recall<T>(&self, ctx: &Context, f: impl FnOnce(&Memory) -> Option<T>) -> Option<T> {
        let roles = ctx
            .autoscaler
            .roles
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        roles.get(self.key).and_then(f)
    }
}

/// Forgets every role not in `seen` (no longer autoscaled, Stream gone or suspended).
pub(super) fn forget_except(ctx: &Context, seen: &HashSet<RoleKey>) {
    let mut roles = ctx
        .autoscaler
        .roles
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    roles.retain(|key, _| {
        let keep = seen.contains(key);
        if !keep {
            ctx.metrics.autoscale.forget(&key.labels());
        }
        keep
    });
}
