//! Autoscaling worker roles on their backlog (`worker.autoscale`).
//!
//! **Engine Operator.** A loop of the leader ([`run`], every
//! `Settings::autoscale_interval`) looks at every Stream with autoscaled
//! workers: it reads the role's consumer group queues — the ready count by
//! a passive AMQP declare (exact, at once), unacknowledged messages and the
//! delivery rate from the management API when the broker has one — and
//! [`decide`]s. A change of replicas is server-side applied to the
//! Deployment's `spec.replicas` alone, under its own field manager
//! ([`MANAGER`]); the reconcile then leaves that field out ([`hand_over`]),
//! so the two never fight. Each change is an Event (`Scaled`) naming its
//! inputs, and `status.autoscale` holds the last decision of every role.
//!
//! **Safe at zero.** A role goes to zero only when the decision says so —
//! nothing ready or unacknowledged through the whole down window (with
//! unknown unacknowledged counts, never) — and only after its pods drained:
//! `POST /drain` (as a suspend does) stops their consumers and finishes the
//! messages in hand; once every pod answers drained the Deployment goes to
//! zero, whatever arrived meanwhile (that wakes it again). Spring Cloud
//! Stream apps have no `/drain`: their graceful shutdown stops the bindings
//! and finishes the message in hand. Other scale-downs rely on the same
//! graceful shutdown (SIGTERM: the consumer is cancelled, in-flight
//! messages finish). A role at zero wakes on the next look after a message
//! is ready: within `autoscale_interval`.
//!
//! **Engine KEDA.** The reconcile emits a ScaledObject and a
//! TriggerAuthentication instead ([`keda`]); KEDA decides.
//!
//! Suspended Streams, Streams being deleted and Streams written as a Data
//! Flow definition are left alone.

pub mod decide;
pub mod keda;
pub mod metrics;
mod role;
mod status;

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

pub use self::role::RoleKey;
use crate::{
    api::{App, Autoscale, AutoscaleEngine, Stream},
    build::StreamObjects,
    context::Context,
    naming,
};

/// The field manager of the replicas the autoscaler sets, and of `status.autoscale`.
pub const MANAGER: &str = "eventflow-autoscaler";

/// What the autoscaler remembers of each role between looks (the leader's memory).
#[derive(Default)]
pub struct State {
    roles: Mutex<HashMap<RoleKey, role::Memory>>,
    /// When `status.autoscale` of each Stream was last written.
    written: Mutex<HashMap<(String, String), Instant>>,
    /// The clock of the decisions.
    epoch: std::sync::OnceLock<Instant>,
}

impl State {
    /// Whether this process set the replicas of the role (so owns them).
    pub fn owns(&self, key: &RoleKey) -> bool {
        self.roles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|m| m.applied)
    }

    fn now(&self) -> Duration {
        self.epoch.get_or_init(Instant::now).elapsed()
    }
}

/// The autoscaled worker of an app with the given engine, if any.
pub fn autoscale_of(app: &App, engine: AutoscaleEngine) -> Option<&Autoscale> {
    app.worker
        .as_ref()?
        .autoscale
        .as_ref()
        .filter(|a| a.engine() == engine)
}

/// Whether the autoscaler already holds the replicas of `app`'s worker:
/// it set them in this process, or the status records a decision of it.
pub fn taken_over(ctx: &Context, stream: &Stream, app: &str) -> bool {
    let key = RoleKey::new(
        stream.namespace().unwrap_or_default(),
        stream.name_any(),
        app,
    );
    ctx.autoscaler.owns(&key)
        || stream.status.as_ref().is_some_and(|s| {
            s.autoscale.iter().any(|a| {
                a.app == app
                    && a.engine == AutoscaleEngine::Operator
                    && a.desired_replicas.is_some()
            })
        })
}

/// The replicas the reconcile applies for autoscaled workers: none once
/// the autoscaler (or KEDA) holds them, else the starting point.
pub fn hand_over(ctx: &Context, stream: &Stream, apps: &[App], objects: &mut StreamObjects) {
    for app in apps {
        let Some(autoscale) = app.worker.as_ref().and_then(|w| w.autoscale.as_ref()) else {
            continue;
        };
        let Some(workload) = naming::worker_workload(&stream.name_any(), app) else {
            continue;
        };
        let replicas = match autoscale.engine() {
            AutoscaleEngine::Keda => None,
            AutoscaleEngine::Operator if taken_over(ctx, stream, &app.name) => None,
            AutoscaleEngine::Operator => {
                Some(autoscale.starting(app.worker.as_ref().and_then(|w| w.replicas)))
            }
        };
        for d in &mut objects.deployments {
            if d.metadata.name.as_deref() == Some(workload.name.as_str())
                && let Some(spec) = d.spec.as_mut()
            {
                spec.replicas = replicas;
            }
        }
    }
}

/// Runs the autoscaler until `stop` completes.
pub async fn run(ctx: Arc<Context>, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(ctx.settings.autoscale_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => look(&ctx).await,
        }
    }
}

/// One look at every autoscaled Stream.
async fn look(ctx: &Context) {
    let Some(store) = ctx.streams.get() else {
        return;
    };
    let mut seen = HashSet::new();
    for guarded in store.state() {
        let Ok(stream) = guarded.0.as_ref() else {
            continue;
        };
        let ours = stream.metadata.deletion_timestamp.is_none()
            && !stream.spec.suspend
            && stream.spec.definition.is_none();
        let has_status = stream
            .status
            .as_ref()
            .is_some_and(|s| !s.autoscale.is_empty());
        let autoscaled = stream
            .spec
            .apps
            .iter()
            .any(|a| a.worker.as_ref().is_some_and(|w| w.autoscale.is_some()));
        if !ours || !(autoscaled || has_status) {
            continue;
        }
        let entries = role::look_at_stream(ctx, stream, &mut seen).await;
        status::write(ctx, stream, entries).await;
    }
    role::forget_except(ctx, &seen);
}

/// Server-side applies `replicas` to a Deployment's `spec.replicas` alone.
async fn scale(
    ctx: &Context,
    namespace: &str,
    name: &str,
    replicas: u32,
) -> kube::Result<Deployment> {
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas},
    });
    Api::<Deployment>::namespaced(ctx.client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
}
