//! Asking a workload's pods to drain: `POST /drain` on the admin port of
//! each running pod of the Deployment (found by its selector), which
//! starts the drain (again: a no-op) and answers where it stands. A pod
//! without an IP, not running or being deleted holds nothing. A Spring
//! Cloud Stream app has no `/drain`: it counts as drained (scaled to zero,
//! its graceful shutdown stops its bindings).

use std::{sync::OnceLock, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{Api, ResourceExt, api::ListParams};
use serde::Deserialize;

use super::WorkloadDrain;
use crate::{context::Context, naming::Workload};

/// Longest wait for one pod's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// The container port the runtime serves `/drain` on, by name.
const ADMIN_PORT: &str = "admin";

/// What the runtime's `/drain` answers (the fields the operator reads).
#[derive(Clone, Debug, Deserialize)]
pub struct DrainState {
    pub drained: bool,
    #[serde(default)]
    pub detail: String,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(ASK_TIMEOUT)
            .build()
            .unwrap_or_default()
    })
}

/// Whether `deployment` runs a Spring Cloud Stream app (no `/drain`).
fn is_spring(deployment: &Deployment) -> bool {
    deployment
        .labels()
        .get(crate::naming::LABEL_RUNTIME)
        .is_some_and(|r| r == "spring-cloud-stream")
}

/// The address of a pod's `/drain`, or `None` when it holds nothing (not
/// running, no IP, being deleted).
pub fn drain_url(pod: &Pod) -> Option<String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    let port = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(ADMIN_PORT))
        .map_or(
            i32::from(eventflow_contract::env::DEFAULT_ADMIN_PORT),
            |p| p.container_port,
        );
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    Some(format!("http://{host}:{port}/drain"))
}

/// Asks one pod to drain; `Ok(None)` when drained, else what is left.
async fn ask(url: &str) -> Option<String> {
    let answer = match client().post(url).send().await {
        Ok(r) if r.status().is_success() => r.json::<DrainState>().await,
        Ok(r) => return Some(format!("/drain answered {}", r.status())),
        Err(e) => return Some(format!("/drain not reachable: {e}")),
    };
    match answer {
        Ok(s) if s.drained => None,
        Ok(s) => Some(s.detail),
        Err(e) => Some(format!("/drain answered something else: {e}")),
    }
}

/// The drain of one workload, from its pods.
pub async fn workload(
    ctx: &Context,
    namespace: &str,
    deployment: &Deployment,
    workload: &Workload,
) -> WorkloadDrain {
    let mut drain = WorkloadDrain {
        deployment: workload.name.clone(),
        role: workload.role.to_owned(),
        left: vec![],
    };
    if is_spring(deployment) {
        return drain;
    }
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .iter()
        .flat_map(|labels| labels.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), namespace);
    let listed = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(listed) => listed,
        Err(e) => {
            drain
                .left
                .push(format!("{}: cannot list its pods: {e}", workload.name));
            return drain;
        }
    };
    for pod in &listed {
        if let Some(url) = drain_url(pod)
            && let Some(left) = ask(&url).await
        {
            drain.left.push(format!("{}: {left}", pod.name_any()));
        }
    }
    drain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "admin", "containerPort": 9191}]}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn only_a_running_pod_with_an_ip_is_asked_on_its_admin_port() {
        let running = pod(serde_json::json!({"phase": "Running", "podIP": "10.0.0.7"}));
        assert_eq!(
            drain_url(&running).as_deref(),
            Some("http://10.0.0.7:9191/drain")
        );
        let v6 = pod(serde_json::json!({"phase": "Running", "podIP": "fd00::7"}));
        assert_eq!(
            drain_url(&v6).as_deref(),
            Some("http://[fd00::7]:9191/drain")
        );
        assert_eq!(
            drain_url(&pod(serde_json::json!({"phase": "Pending"}))),
            None
        );
        assert_eq!(
            drain_url(&pod(serde_json::json!({"phase": "Running"}))),
            None
        );
        let mut deleted = running;
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_eq!(drain_url(&deleted), None);
    }
}
