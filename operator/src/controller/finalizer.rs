//! The Stream finalizer `eventflow.dev/topology`: added before anything is
//! declared on the broker, removed once the deleted Stream's broker users
//! and topology are gone (never what another Stream still uses), kept (`Retain`), or left
//! behind with a Warning when the broker stays unreachable for
//! `cleanup_give_up`. A Stream is never stuck.
//!
//! Hand-rolled rather than kube-runtime's `finalizer()` helper: the helper
//! ends the reconcile after adding the finalizer and relies on the watch
//! event of that write for the next one, which our spec/deletion predicate
//! filters out (and which would cost a second reconcile per created Stream).
//! Here the finalizer is added and the same reconcile goes on.

use std::time::Duration;

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use crate::{
    Error, Result,
    api::{DeletionPolicy, Stream, StreamPhase},
    build::stream::stream_topology,
    context::Context,
    naming::STREAM_FINALIZER,
    resolve::{self, Broker},
    status::report::patch_status,
    topology::{describe, plan},
    users,
};

pub fn has_finalizer(stream: &Stream) -> bool {
    stream.finalizers().iter().any(|f| f == STREAM_FINALIZER)
}

/// Adds (`present`) or removes our finalizer, leaving every other one.
pub async fn set(ctx: &Context, stream: &Stream, present: bool) -> Result<()> {
    let mut finalizers: Vec<String> = stream
        .finalizers()
        .iter()
        .filter(|f| f.as_str() != STREAM_FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(STREAM_FINALIZER.to_owned());
    }
    let api =
        Api::<Stream>::namespaced(ctx.client.clone(), &stream.namespace().unwrap_or_default());
    // resourceVersion makes this a compare-and-swap: never drop someone else's finalizer.
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": stream.resource_version()}});
    match api
        .patch(
            &stream.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the finalizer and forgets what this process remembered of the Stream.
async fn release(ctx: &Context, stream: &Stream, namespace: &str) -> Result<Action> {
    set(ctx, stream, false).await?;
    ctx.declarations
        .forget(&format!("{namespace}/{}", stream.name_any()));
    ctx.revisions.forget(&stream.uid().unwrap_or_default());
    crate::backlog::forget(ctx, namespace, &stream.name_any());
    Ok(Action::await_change())
}

/// Deletes the broker users of a deleted Stream's apps.
async fn remove_users(ctx: &Context, stream: &Stream, namespace: &str) -> Result<()> {
    match resolve::stream_broker(ctx, namespace, &stream.spec.broker).await? {
        Broker::Missing => Ok(()),
        Broker::Found(broker) => {
            let uri = broker.uri?;
            users::remove_all(ctx, namespace, &stream.name_any(), &broker.wiring, &uri).await
        }
    }
}

/// The deletion of a Stream: its broker users removed, its topology per
/// `deletionPolicy`.
pub async fn cleanup(stream: &Stream, namespace: &str, ctx: &Context) -> Result<Action> {
    if !has_finalizer(stream) {
        return Ok(Action::await_change());
    }
    let expanded = match super::stream::expand(ctx, stream).await? {
        Ok(expanded) => expanded,
        Err(e) => {
            ctx.event(
                stream,
                true,
                "TopologyLeftBehind",
                format!("released the finalizer without deleting: the definition cannot be expanded ({e})"),
            )
            .await;
            return release(ctx, stream, namespace).await;
        }
    };
    let stream = expanded.as_ref();
    let mine = stream_topology(stream, namespace, eventflow_contract::QueueType::Classic);
    if stream.spec.deletion_policy == DeletionPolicy::Retain {
        // The topology stays; the users of apps that are gone do not.
        if let Err(e) = remove_users(ctx, stream, namespace).await {
            ctx.event(
                stream,
                true,
                "BrokerUsersLeftBehind",
                format!("the apps' broker users could not be deleted: {e}"),
            )
            .await;
        }
        ctx.event(
            stream,
            false,
            "TopologyRetained",
            format!("deletionPolicy Retain: kept {}", describe(&mine)),
        )
        .await;
        return release(ctx, stream, namespace).await;
    }
    // Destinations another live Stream on the same broker still uses stay.
    let streams = resolve::expanded_streams(ctx, namespace).await?;
    let others = plan::declared_by_others(stream, namespace, &streams);
    let doomed = plan::unshared(&mine, &others);
    let result = match resolve::stream_broker(ctx, namespace, &stream.spec.broker).await? {
        Broker::Missing => Err(Error::BrokerNotFound(stream.spec.broker.clone())),
        Broker::Found(broker) => match broker.uri {
            Ok(uri) => {
                let name = stream.name_any();
                match users::remove_all(ctx, namespace, &name, &broker.wiring, &uri).await {
                    Ok(()) => ctx.amqp.delete(&uri, &doomed).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    let e = match result {
        Ok(()) => {
            ctx.event(
                stream,
                false,
                "TopologyDeleted",
                format!("deleted {}", describe(&doomed)),
            )
            .await;
            return release(ctx, stream, namespace).await;
        }
        Err(e) => e,
    };
    let since = stream
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(jiff::Timestamp::now);
    let waited = jiff::Timestamp::now().duration_since(since).unsigned_abs();
    let give_up = matches!(e, Error::BrokerNotFound(_)) || waited >= ctx.settings.cleanup_give_up;
    if give_up {
        ctx.event(
            stream,
            true,
            "TopologyLeftBehind",
            format!(
                "released the finalizer without deleting ({e}); left on the broker: {}",
                describe(&doomed)
            ),
        )
        .await;
        return release(ctx, stream, namespace).await;
    }
    let mut status = stream.status.clone().unwrap_or_default();
    if status.phase != StreamPhase::Deleting {
        status.phase = StreamPhase::Deleting;
        patch_status(ctx, stream, &status).await?;
        ctx.event(
            stream,
            true,
            e.reason(),
            format!("cannot delete the topology yet, retrying: {e}"),
        )
        .await;
    }
    let left = ctx.settings.cleanup_give_up.saturating_sub(waited);
    Ok(Action::requeue(
        left.min(Duration::from_secs(5))
            .max(Duration::from_millis(200)),
    ))
}
