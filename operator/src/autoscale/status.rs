//! `status.autoscale`, written by the autoscaler alone (its own field
//! manager, so the reconcile's status writes leave it be): at once when a
//! decision changes replicas or recommendation, else its inputs at most
//! every [`REFRESH`].

use std::time::{Duration, Instant};

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::MANAGER;
use crate::api::{AutoscaleStatus, Stream};

/// How often unchanged decisions refresh their inputs (backlog, rate, reason) in status.
pub const REFRESH: Duration = Duration::from_secs(15);

/// What makes a decision news: who decides and the replicas.
fn decisions(entries: &[AutoscaleStatus]) -> Vec<AutoscaleStatus> {
    entries
        .iter()
        .map(|e| AutoscaleStatus {
            app: e.app.clone(),
            engine: e.engine,
            desired_replicas: e.desired_replicas,
            current_replicas: e.current_replicas,
            recommended_replicas: e.recommended_replicas,
            ..Default::default()
        })
        .collect()
}

/// Writes `entries` as the Stream's `status.autoscale` when they are news
/// (or the last write is older than [`REFRESH`] and anything moved).
pub(super) async fn write(
    ctx: &crate::context::Context,
    stream: &Stream,
    entries: Vec<AutoscaleStatus>,
) {
    let stored: &[AutoscaleStatus] = stream
        .status
        .as_ref()
        .map_or(&[], |s| s.autoscale.as_slice());
    if stored == entries.as_slice() {
        return;
    }
    let namespace = stream.namespace().unwrap_or_default();
    let key = (namespace.clone(), stream.name_any());
    let news = decisions(stored) != decisions(&entries);
    {
        let written = ctx
            .autoscaler
            .written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let stale = written.get(&key).is_none_or(|at| at.elapsed() >= REFRESH);
        if !news && !stale {
            return;
        }
    }
    let body = json!({
        "apiVersion": "eventflow.dev/v1alpha1",
        "kind": "Stream",
        "status": {"autoscale": entries},
    });
    let result = Api::<Stream>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &stream.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await;
    match result {
        Ok(_) => {
            ctx.autoscaler
                .written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Instant::now());
        }
        Err(e) => {
            tracing::warn!(stream = %key.1, namespace, error = %e, "autoscaler could not write status")
        }
    }
}
