//! Each condition of a Stream decided on its own, from what one reconcile
//! observed: BrokerReady, TopologyReady, AppsReady, then Ready from the
//! three, and the phase.

use super::BrokerState;
use crate::api::{StreamPhase, StreamStatus, WorkloadStatus};

/// One condition's status, reason and message.
pub struct Verdict {
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    fn yes(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ok: true,
            reason,
            message: message.into(),
        }
    }

    pub fn no(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            reason,
            message: message.into(),
        }
    }
}

pub fn broker(state: &BrokerState) -> Verdict {
    match state {
        BrokerState::Ready => Verdict::yes("Connected", "the EventBroker is ready"),
        BrokerState::NotReady(reason, msg) => Verdict::no(reason, msg.clone()),
    }
}

pub fn topology(declared: Option<&Result<(), (&'static str, String)>>) -> Verdict {
    match declared {
        Some(Ok(())) => Verdict::yes("Declared", "exchanges, queues and bindings are declared"),
        Some(Err((reason, msg))) => Verdict::no(reason, msg.clone()),
        None => Verdict::no("WaitingForBroker", "not declared yet"),
    }
}

pub fn users(users: &crate::users::Users) -> Verdict {
    use crate::users::Users;
    match users {
        Users::PerApp {
            apps,
            written: Ok(()),
        } => Verdict::yes(
            "PerApp",
            format!(
                "each app connects as its own broker user ({} users)",
                apps.len()
            ),
        ),
        Users::PerApp {
            written: Err((reason, msg)),
            ..
        } => Verdict::no(
            reason,
            format!("the apps' broker users could not be written: {msg}"),
        ),
        Users::Shared(why) => Verdict::no("SharedUser", why.clone()),
    }
}

/// Workloads every pod of which is ready and runs the applied template, and all workloads.
pub fn ready_workloads(workloads: &[WorkloadStatus]) -> (usize, usize) {
    let ready = workloads
        .iter()
        .filter(|w| {
            w.ready_replicas >= w.replicas
                && w.updated_replicas >= w.replicas
                && w.old_replicas == 0
        })
        .count();
    (ready, workloads.len())
}

pub fn apps(ready: usize, total: usize, apply_error: Option<&(&'static str, String)>) -> Verdict {
    match apply_error {
        Some((reason, msg)) => Verdict::no(reason, format!("applying the workloads failed: {msg}")),
        None if total > 0 && ready == total => {
            Verdict::yes("AllReady", format!("{ready}/{total} workloads ready"))
        }
        None => Verdict::no("Progressing", format!("{ready}/{total} workloads ready")),
    }
}

/// Ready: every other condition true; else the message names those that are not.
pub fn ready(others: &[(&str, bool)]) -> Verdict {
    let not_ready: Vec<&str> = others
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .collect();
    if not_ready.is_empty() {
        Verdict::yes("Running", "everything is ready")
    } else {
        Verdict::no("NotReady", format!("not ready: {}", not_ready.join(", ")))
    }
}

/// Running when ready; Degraded when it was running before; Pending while
/// nothing runs or the broker was never reached; else Deploying.
pub fn phase(
    previous: Option<&StreamStatus>,
    ready: bool,
    workloads: usize,
    broker_ok: bool,
    topology_attempted: bool,
) -> StreamPhase {
    let was_running =
        previous.is_some_and(|p| matches!(p.phase, StreamPhase::Running | StreamPhase::Degraded));
    if ready {
        StreamPhase::Running
    } else if was_running {
        StreamPhase::Degraded
    } else if workloads == 0 || !broker_ok && !topology_attempted {
        StreamPhase::Pending
    } else {
        StreamPhase::Deploying
    }
}
