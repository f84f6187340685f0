//! Pods the tests start or look at: the restricted security context, waits
//! for a pod to finish or be Ready, a pod's status for failure messages, and
//! the Ready pod behind a Service.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::{Api, Client};
use serde_json::json;

use crate::wait::wait_for;

/// The restricted-profile container security context every test pod uses.
pub fn restricted_container_security() -> serde_json::Value {
    json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Waits until a pod has finished and returns its phase and log.
pub async fn wait_pod_finished(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
) -> Result<(String, String)> {
    wait_for(timeout, &format!("pod {name} to finish"), || async {
        let phase = phase(pods, name).await?;
        Ok(phase == "Succeeded" || phase == "Failed")
    })
    .await?;
    let phase = phase(pods, name).await?;
    let log = pods
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_default();
    Ok((phase, log))
}

/// A pod's phase (`Pending`, `Running`, `Succeeded`, ...; empty before it has one).
async fn phase(pods: &Api<Pod>, name: &str) -> Result<String> {
    Ok(pods
        .get(name)
        .await?
        .status
        .and_then(|s| s.phase)
        .unwrap_or_default())
}

/// Waits until a pod is Ready.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<()> {
    wait_for(timeout, &format!("pod {name} to be Ready"), || async {
        let pod = pods.get(name).await?;
        let status = pod.status.unwrap_or_default();
        if status.phase.as_deref() == Some("Failed") {
            bail!("pod {name} failed: {:?}", status.message);
        }
        Ok(status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
}

/// Describes a pod for failure messages: phase, conditions and container states.
pub async fn describe_pod(pods: &Api<Pod>, name: &str) -> String {
    match pods.get(name).await {
        Ok(p) => serde_json::to_string_pretty(&p.status).unwrap_or_default(),
        Err(e) => format!("cannot get pod {name}: {e}"),
    }
}

/// Whether a pod is Ready and not being deleted.
pub fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Ready pods matching a label selector (`k=v,k2=v2`).
pub async fn ready_pods(client: &Client, namespace: &str, selector: &str) -> Result<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&kube::api::ListParams::default().labels(selector))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(is_ready)
        .filter_map(|p| p.metadata.name)
        .collect())
}

/// A Ready pod behind a Service (by the Service's selector).
pub async fn pod_of_service(client: &Client, namespace: &str, service: &str) -> Result<String> {
    let svc: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), namespace);
    let selector = svc
        .get(service)
        .await?
        .spec
        .and_then(|s| s.selector)
        .unwrap_or_default();
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    ready_pods(client, namespace, &labels.join(","))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no Ready pod behind Service {namespace}/{service}"))
}
