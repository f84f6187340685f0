//! Suspending a Stream (`spec.suspend: true`) without losing anything, and
//! resuming it. Each reconcile while suspended, from what it observes now
//! (so an operator restart mid-drain just carries on):
//!
//! 1. the workers first (web roles keep serving, so a worker's calls to a
//!    web API can finish): `POST /drain` on the admin port of each running
//!    pod of each worker Deployment ([`probe`]); a Deployment whose pods all
//!    answer drained — or that has none — is held at zero replicas;
//! 2. once every worker is at zero, the web roles (and role `all`): `POST
//!    /drain` refuses new commands, the relay empties the outbox; drained →
//!    zero replicas.
//!
//! Spring Cloud Stream apps have no `/drain`: they go to zero in their
//! phase, and their graceful shutdown (SIGTERM) stops their bindings.
//! Messages published meanwhile wait in their queues.
//!
//! The `Suspended` condition (True while suspended) says `Draining` (what
//! is left, per pod), `Drained`, or `DrainTimedOut` once
//! `spec.drainTimeoutSeconds` (from the condition's lastTransitionTime,
//! when the suspend began) passed: then everything is scaled to zero
//! anyway and the message names what was left. `Drained` and
//! `DrainTimedOut` are final until the Stream resumes: everything stays at
//! zero, no pod is asked again. On resume the Deployments get the spec's
//! replicas again (the normal apply), the condition goes False (`Resumed`)
//! and the phase goes through Deploying to Running.

pub mod probe;

use std::{collections::BTreeSet, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::{DEFAULT_DRAIN_TIMEOUT_SECONDS, Stream, StreamPhase, StreamStatus, set_condition},
    build::StreamObjects,
    context::Context,
    status::{READY, SUSPENDED},
};

pub const DRAINING: &str = "Draining";
pub const DRAINED: &str = "Drained";
pub const DRAIN_TIMED_OUT: &str = "DrainTimedOut";
pub const RESUMED: &str = "Resumed";
/// How soon a draining Stream is looked at again.
pub const DRAIN_POLL: Duration = Duration::from_secs(2);

/// Where a suspended Stream's drain stands after this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    /// [`DRAINING`], [`DRAINED`] or [`DRAIN_TIMED_OUT`].
    pub reason: &'static str,
    pub message: String,
    /// Deployments to hold at zero replicas.
    pub zero: BTreeSet<String>,
}

/// One workload's drain, from its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadDrain {
    pub deployment: String,
    /// `worker`, `web` or `all`.
    pub role: String,
    /// What is left, one entry per pod that is not drained (`pod: what`).
    pub left: Vec<String>,
}

impl WorkloadDrain {
    fn drained(&self) -> bool {
        self.left.is_empty()
    }
}

/// Whether a role drains in the first phase (the workers).
pub fn first_phase(role: &str) -> bool {
    role == "worker"
}

/// The condition a suspend began with, if it is still on (True).
fn ongoing(old: Option<&StreamStatus>) -> Option<&Condition> {
    old?.conditions
        .iter()
        .find(|c| c.type_ == SUSPENDED && c.status == "True")
}

/// Decides the suspension from the workloads' drains: `workers` (every
/// worker workload) and `webs` (`None` while the workers are not all at
/// zero: they were not asked), `elapsed` since the suspend began.
pub fn decide(
    workers: &[WorkloadDrain],
    webs: Option<&[WorkloadDrain]>,
    all: &[String],
    elapsed: Duration,
    timeout: Duration,
) -> Suspension {
    let mut zero: BTreeSet<String> = workers
        .iter()
        .filter(|w| w.drained())
        .map(|w| w.deployment.clone())
        .collect();
    if let Some(webs) = webs {
        zero.extend(
            webs.iter()
                .filter(|w| w.drained())
                .map(|w| w.deployment.clone()),
        );
    }
    let left: Vec<String> = workers
        .iter()
        .chain(webs.unwrap_or_default())
        .flat_map(|w| w.left.iter().map(move |l| format!("{} {l}", w.role)))
        .collect();
    let everything: BTreeSet<String> = all.iter().cloned().collect();
    if zero == everything {
        return Suspension {
            reason: DRAINED,
            message: format!(
                "drained: {} workload(s) scaled to zero; new messages wait in their queues",
                everything.len()
            ),
            zero: everything,
        };
    }
    if elapsed >= timeout {
        return Suspension {
            reason: DRAIN_TIMED_OUT,
            message: format!(
                "not drained within {} s, scaled to zero anyway; left: {}",
                timeout.as_secs(),
                left.join("; ")
            ),
            zero: everything,
        };
    }
    let stage = if webs.is_none() {
        "draining the workers (web roles keep serving until they are done)"
    } else {
        "workers drained; draining the web roles"
    };
    Suspension {
        reason: DRAINING,
        message: format!(
            "{stage}; left: {}; {} s of {} s",
            left.join("; "),
            elapsed.as_secs(),
            timeout.as_secs()
        ),
        zero,
    }
}

/// Drains a suspended Stream as far as it goes now (see the module).
pub async fn drain(
    ctx: &Context,
    stream: &Stream,
    objects: &StreamObjects,
    old: Option<&StreamStatus>,
    now: &Time,
) -> Suspension {
    let all: Vec<String> = objects.workloads.iter().map(|w| w.name.clone()).collect();
    if let Some(c) = ongoing(old)
        && (c.reason == DRAINED || c.reason == DRAIN_TIMED_OUT)
    {
        return Suspension {
            reason: if c.reason == DRAINED {
                DRAINED
            } else {
                DRAIN_TIMED_OUT
            },
            message: c.message.clone(),
            zero: all.into_iter().collect(),
        };
    }
    let since = ongoing(old).map_or(now.0, |c| c.last_transition_time.0);
    let elapsed = now
        .0
        .duration_since(since)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let timeout = Duration::from_secs(
        u64::try_from(
            stream
                .spec
                .drain_timeout_seconds
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT_SECONDS),
        )
        .unwrap_or(0),
    );
    let namespace = stream.metadata.namespace.as_deref().unwrap_or_default();
    let mut workers = Vec::new();
    let mut webs = Vec::new();
    for (deployment, workload) in objects.deployments.iter().zip(&objects.workloads) {
        let into = if first_phase(workload.role) {
            &mut workers
        } else {
            &mut webs
        };
        into.push((deployment, workload));
    }
    let mut worker_drains = Vec::new();
    for (d, w) in workers {
        worker_drains.push(probe::workload(ctx, namespace, d, w).await);
    }
    let web_drains = if worker_drains.iter().all(WorkloadDrain::drained) {
        let mut out = Vec::new();
        for (d, w) in webs {
            out.push(probe::workload(ctx, namespace, d, w).await);
        }
        Some(out)
    } else {
        None
    };
    decide(
        &worker_drains,
        web_drains.as_deref(),
        &all,
        elapsed,
        timeout,
    )
}

/// Holds the Deployments the suspension names at zero replicas.
pub fn hold_at_zero(objects: &mut StreamObjects, suspension: &Suspension) {
    for d in &mut objects.deployments {
        if suspension
            .zero
            .contains(d.metadata.name.as_deref().unwrap_or_default())
            && let Some(spec) = d.spec.as_mut()
        {
            spec.replicas = Some(0);
        }
    }
}

/// Writes the suspension into the status: the `Suspended` condition, phase
/// `Suspended`, Ready False; after a resume the condition goes False.
pub fn mark(status: &mut StreamStatus, suspension: Option<&Suspension>, now: &Time) {
    let g = status.observed_generation;
    match suspension {
        Some(s) => {
            set_condition(
                &mut status.conditions,
                SUSPENDED,
                true,
                s.reason,
                s.message.clone(),
                g,
                now,
            );
            set_condition(
                &mut status.conditions,
                READY,
                false,
                "Suspended",
                format!("spec.suspend is set: {}", s.message),
                g,
                now,
            );
            status.phase = StreamPhase::Suspended;
        }
        None => {
            if status
                .conditions
                .iter()
                .any(|c| c.type_ == SUSPENDED && c.status == "True")
            {
                set_condition(
                    &mut status.conditions,
                    SUSPENDED,
                    false,
                    RESUMED,
                    "resumed: the Deployments have the spec's replicas again",
                    g,
                    now,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
