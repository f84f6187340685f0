//! Writing a Stream's status: one server-side apply of the status
//! subresource when it changed, and an Event for each condition whose
//! status changed (a transition is news; a steady state is not).

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{BROKER_READY, READY, SUSPENDED};
use crate::{
    Result,
    api::{Stream, StreamStatus},
    context::Context,
    naming::MANAGER,
};

/// Writes `new` as the status of `stream` (unless it is what the Stream
/// already has), then publishes the Events of its transitions.
pub async fn report(ctx: &Context, stream: &Stream, new: &StreamStatus) -> Result<()> {
    let old = stream.status.as_ref();
    // status.autoscale is the autoscaler's (its own field manager).
    if old.map(without_autoscale) == Some(without_autoscale(new)) {
        return Ok(());
    }
    patch_status(ctx, stream, new).await?;
    announce(ctx, stream, old, new).await;
    Ok(())
}

fn without_autoscale(s: &StreamStatus) -> StreamStatus {
    StreamStatus {
        autoscale: vec![],
        ..s.clone()
    }
}

/// The status subresource, server-side applied with our field manager.
pub async fn patch_status(ctx: &Context, stream: &Stream, status: &StreamStatus) -> Result<()> {
    let api =
        Api::<Stream>::namespaced(ctx.client.clone(), &stream.namespace().unwrap_or_default());
    let body = json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream", "status": status});
    api.patch_status(
        &stream.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Publishes Events for the conditions that changed status.
async fn announce(ctx: &Context, stream: &Stream, old: Option<&StreamStatus>, new: &StreamStatus) {
    for c in &new.conditions {
        let before = old.and_then(|o| o.conditions.iter().find(|p| p.type_ == c.type_));
        let flipped = before.is_some_and(|b| b.status != c.status)
            // Draining -> Drained / DrainTimedOut is news too.
            || c.type_ == SUSPENDED && before.is_some_and(|b| b.reason != c.reason);
        // A new condition is news only when good (e.g. the topology declared)
        // or when the spec is invalid (told once, on Ready).
        let first = before.is_none()
            && c.type_ != BROKER_READY
            && (c.status == "True" || (c.type_ == READY && c.reason == "InvalidSpec"));
        if !(flipped || first) {
            continue;
        }
        // A suspend is asked for: of it, only a drain that timed out is a warning.
        let warning = if c.type_ == SUSPENDED || c.reason == "Suspended" {
            c.reason == "DrainTimedOut"
        } else {
            c.status != "True"
        };
        ctx.event(
            stream,
            warning,
            &c.reason,
            format!("{} is {}: {}", c.type_, c.status, c.message),
        )
        .await;
    }
}
