//! The status step: conditions and phase derived from what this reconcile
//! applied and observed — computed once per reconcile, written once
//! ([`report`]) with Events for the conditions that changed. Every
//! condition carries the generation it describes, so a client can tell a
//! fresh status from a stale one. [`conditions`] decides each condition on
//! its own.

mod conditions;
pub mod report;

use conditions::Verdict;

use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Time};

use crate::{
    api::{DestinationStatus, StreamPhase, StreamStatus, WorkloadStatus, set_condition},
    naming::Workload,
};

pub const BROKER_READY: &str = "BrokerReady";
pub const TOPOLOGY_READY: &str = "TopologyReady";
pub const APPS_READY: &str = "AppsReady";
/// Whether each app connects as its own broker user (informational: not
/// part of Ready; an app that cannot connect shows in AppsReady).
pub const BROKER_USERS: &str = "BrokerUsers";
pub const READY: &str = "Ready";
/// Set while `spec.suspend` is: reason `Draining`, `Drained` or `DrainTimedOut`.
pub const SUSPENDED: &str = "Suspended";

/// The broker as a Stream sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum BrokerState {
    Ready,
    /// Not usable; reason and message.
    NotReady(&'static str, String),
}

/// What one reconcile of a Stream found out.
#[derive(Clone, Debug)]
pub struct Observed {
    pub generation: Option<i64>,
    /// Problems from validation; when set nothing was applied.
    pub invalid: Option<String>,
    pub broker: BrokerState,
    pub workloads: Vec<WorkloadStatus>,
    /// `None` when the topology was not attempted; `Some(Err(reason, message))` when it failed.
    pub topology: Option<Result<(), (&'static str, String)>>,
    pub destinations: Vec<DestinationStatus>,
    /// Applying the workloads failed: reason and message.
    pub apply_error: Option<(&'static str, String)>,
    /// The revision of the spec applied (`None`: nothing applied, the last one stays).
    pub revision: Option<i64>,
    /// How the apps connect to the broker (`None`: not decided this time).
    pub users: Option<crate::users::Users>,
}

/// Replica counts of an applied Deployment. Until the Deployment controller
/// has observed the applied generation, its counts describe the previous
/// template: no pod counts as updated then (what `kubectl rollout status`
/// waits for too).
pub fn workload_status(workload: &Workload, applied: &Deployment) -> WorkloadStatus {
    let status = applied.status.clone().unwrap_or_default();
    let current =
        status.observed_generation.unwrap_or(0) >= applied.metadata.generation.unwrap_or(0);
    let updated = if current {
        status.updated_replicas.unwrap_or(0)
    } else {
        0
    };
    WorkloadStatus {
        app: workload.app.clone(),
        role: workload.role.to_owned(),
        deployment: workload.name.clone(),
        replicas: applied.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: updated,
        old_replicas: (status.replicas.unwrap_or(0) - updated).max(0),
    }
}

/// The status after a reconcile, keeping transition times from `previous`.
pub fn stream_status(
    previous: Option<&StreamStatus>,
    observed: Observed,
    now: &Time,
) -> StreamStatus {
    let g = observed.generation;
    let current_revision = observed
        .revision
        .or(previous.and_then(|p| p.current_revision));
    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    let mut set = |type_: &str, c: Verdict| {
        set_condition(&mut conditions, type_, c.ok, c.reason, c.message, g, now)
    };
    if let Some(problems) = observed.invalid {
        set(READY, Verdict::no("InvalidSpec", problems));
        for t in [BROKER_READY, TOPOLOGY_READY, APPS_READY] {
            set(
                t,
                Verdict::no("InvalidSpec", "not deployed: the spec is invalid"),
            );
        }
        return StreamStatus {
            phase: StreamPhase::Failed,
            observed_generation: g,
            conditions,
            current_revision,
            ..crate::backlog::kept(previous)
        };
    }
    let broker = conditions::broker(&observed.broker);
    let topology = conditions::topology(observed.topology.as_ref());
    let (ready, total) = conditions::ready_workloads(&observed.workloads);
    let apps = conditions::apps(ready, total, observed.apply_error.as_ref());
    let all = conditions::ready(&[
        (BROKER_READY, broker.ok),
        (TOPOLOGY_READY, topology.ok),
        (APPS_READY, apps.ok),
    ]);
    let phase = conditions::phase(
        previous,
        all.ok,
        total,
        broker.ok,
        observed.topology.is_some(),
    );
    set(BROKER_READY, broker);
    set(TOPOLOGY_READY, topology);
    set(APPS_READY, apps);
    set(READY, all);
    if let Some(users) = &observed.users {
        set(BROKER_USERS, conditions::users(users));
    }
    StreamStatus {
        phase,
        observed_generation: g,
        conditions,
        apps_ready: Some(format!("{ready}/{total}")),
        workloads: observed.workloads,
        destinations: observed.destinations,
        current_revision,
        ..crate::backlog::kept(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn workload(ready: i32) -> WorkloadStatus {
        WorkloadStatus {
            app: "a".into(),
            role: "web".into(),
            deployment: "s-a-web".into(),
            replicas: 1,
            ready_replicas: ready,
            updated_replicas: ready,
            old_replicas: 0,
        }
    }

    fn observed(ready: i32, topology: Option<Result<(), (&'static str, String)>>) -> Observed {
        Observed {
            generation: Some(7),
            invalid: None,
            broker: BrokerState::Ready,
            workloads: vec![workload(ready)],
            topology,
            destinations: vec![],
            apply_error: None,
            revision: None,
            users: None,
        }
    }

    #[test]
    fn every_condition_records_the_generation_it_describes() {
        let s = stream_status(None, observed(0, Some(Ok(()))), &now());
        assert_eq!(s.observed_generation, Some(7));
        assert_eq!(s.conditions.len(), 4);
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(7))
        );
        assert_eq!(s.phase, StreamPhase::Deploying);
        assert_eq!(s.apps_ready.as_deref(), Some("0/1"));
    }

    #[test]
    fn a_running_stream_whose_topology_fails_is_degraded_not_ready() {
        let running = stream_status(None, observed(1, Some(Ok(()))), &now());
        assert_eq!(running.phase, StreamPhase::Running);
        let failed = stream_status(
            Some(&running),
            observed(1, Some(Err(("BrokerUnreachable", "timeout".into())))),
            &now(),
        );
        assert_eq!(failed.phase, StreamPhase::Degraded);
        let ready = failed.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.status, "False");
        assert!(ready.message.contains(TOPOLOGY_READY));
    }

    #[test]
    fn an_invalid_spec_fails_with_the_problem_in_the_ready_condition() {
        let mut o = observed(0, None);
        o.invalid = Some("spec.apps[0].env[0].name: reserved".into());
        let s = stream_status(None, o, &now());
        assert_eq!(s.phase, StreamPhase::Failed);
        let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(ready.reason, "InvalidSpec");
        assert!(ready.message.contains("spec.apps[0].env[0].name"));
    }

    #[test]
    fn the_current_revision_stays_until_a_spec_is_applied_again() {
        let mut applied = observed(1, Some(Ok(())));
        applied.revision = Some(3);
        let s = stream_status(None, applied, &now());
        assert_eq!(s.current_revision, Some(3));
        let mut invalid = observed(0, None);
        invalid.invalid = Some("broken".into());
        let failed = stream_status(Some(&s), invalid, &now());
        assert_eq!(failed.current_revision, Some(3));
        let mut next = observed(1, Some(Ok(())));
        next.revision = Some(4);
        assert_eq!(
            stream_status(Some(&failed), next, &now()).current_revision,
            Some(4)
        );
    }

    fn deployment(generation: i64, observed: i64, pods: i32, updated: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s-a-worker", "generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": pods,
                       "readyReplicas": pods, "updatedReplicas": updated}
        }))
        .unwrap()
    }

    #[test]
    fn a_rollout_shows_until_every_pod_runs_the_applied_template() {
        let w = Workload {
            app: "a".into(),
            role: "worker",
            name: "s-a-worker".into(),
        };
        // Just applied: the controller has not seen generation 3 yet, so its
        // counts are those of the old template.
        let stale = workload_status(&w, &deployment(3, 2, 2, 2));
        assert_eq!((stale.updated_replicas, stale.old_replicas), (0, 2));
        // Half way: one new pod, two old ones (surge).
        let half = workload_status(&w, &deployment(3, 3, 3, 1));
        assert_eq!((half.updated_replicas, half.old_replicas), (1, 2));
        // The last old pod still terminating.
        let last = workload_status(&w, &deployment(3, 3, 3, 2));
        assert_eq!(last.old_replicas, 1);
        for rolling in [stale, half, last] {
            let mut o = observed(1, Some(Ok(())));
            o.workloads = vec![rolling];
            let s = stream_status(None, o, &now());
            let apps = s.conditions.iter().find(|c| c.type_ == APPS_READY).unwrap();
            assert_eq!(
                (apps.status.as_str(), apps.reason.as_str()),
                ("False", "Progressing")
            );
        }
        let done = workload_status(&w, &deployment(3, 3, 2, 2));
        let mut o = observed(1, Some(Ok(())));
        o.workloads = vec![done];
        assert_eq!(stream_status(None, o, &now()).phase, StreamPhase::Running);
    }
}
