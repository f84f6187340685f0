//! Reconciles one Stream through the pipeline resolve -> validate -> build
//! -> apply -> topology -> status, and on deletion removes its broker
//! topology through the finalizer (never what another Stream still uses,
//! never stuck longer than `cleanup_give_up` on an unreachable broker).

use std::sync::Arc;

use eventflow_contract::{QueueType, Topology};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Service},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use crate::{
    Error, Result,
    api::{DeletionPolicy, DestinationStatus, Stream, StreamPhase, StreamStatus, is_true},
    apply, build,
    context::Context,
    naming::{LABEL_STREAM, MANAGER, STREAM_FINALIZER},
    resolve,
    status::{self, BrokerState, Observed},
    topology::{self, unshared},
    validate,
};

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

pub async fn reconcile(stream: Arc<Stream>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = stream.namespace().unwrap_or_default();
    let key = format!("Stream/{namespace}/{}", stream.name_any());
    if stream.metadata.deletion_timestamp.is_some() {
        return cleanup(&stream, &namespace, &ctx).await;
    }
    if !stream.finalizers().iter().any(|f| f == STREAM_FINALIZER) {
        tracing::debug!(object = key, "step: add finalizer");
        // Before anything is declared on the broker, so nothing can leak.
        set_finalizers(&ctx, &stream, true).await?;
    }
    let action = deploy(&stream, &namespace, &ctx, &key).await?;
    Ok(action)
}

async fn set_finalizers(ctx: &Context, stream: &Stream, present: bool) -> Result<()> {
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

async fn patch_status(ctx: &Context, stream: &Stream, status: &StreamStatus) -> Result<()> {
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
        let flipped = before.is_some_and(|b| b.status != c.status);
        // A new condition is news only when good (e.g. the topology declared)
        // or when the spec is invalid (told once, on Ready).
        let first = before.is_none()
            && c.type_ != status::BROKER_READY
            && (c.status == "True" || (c.type_ == status::READY && c.reason == "InvalidSpec"));
        if !(flipped || first) {
            continue;
        }
        let warning = c.status != "True";
        ctx.event(
            stream,
            warning,
            &c.reason,
            format!("{} is {}: {}", c.type_, c.status, c.message),
        )
        .await;
    }
}

async fn deploy(stream: &Stream, namespace: &str, ctx: &Context, key: &str) -> Result<Action> {
    let name = stream.name_any();
    let old = stream.status.as_ref();
    let mut observed = Observed {
        generation: stream.metadata.generation,
        invalid: None,
        broker: BrokerState::Ready,
        workloads: vec![],
        topology: None,
        destinations: vec![],
        apply_error: None,
    };

    let problems = validate::validate_stream(&name, &stream.spec);
    if !problems.is_empty() {
        observed.invalid = Some(validate::describe(&problems));
        let new = status::stream_status(old, observed, &now());
        patch_status(ctx, stream, &new).await?;
        announce(ctx, stream, old, &new).await;
        return Ok(Action::await_change());
    }

    tracing::debug!(object = key, "step: resolve broker");
    let Some(broker) = resolve::cached_broker(ctx, namespace, &stream.spec.broker).await? else {
        observed.broker = BrokerState::NotReady(
            "BrokerNotFound",
            format!("EventBroker {} does not exist", stream.spec.broker),
        );
        let new = status::stream_status(old, observed, &now());
        patch_status(ctx, stream, &new).await?;
        announce(ctx, stream, old, &new).await;
        return Ok(Action::requeue(ctx.settings.resync));
    };
    let wiring = build::broker_wiring(&broker);
    let broker_ready = broker
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, status::READY));
    if !broker_ready {
        observed.broker = BrokerState::NotReady(
            "BrokerNotReady",
            format!("EventBroker {} is not Ready", stream.spec.broker),
        );
    }

    let objects = build::build_stream(stream, &wiring.secret, wiring.queue_type)
        .ok_or_else(|| Error::Malformed("a stored Stream has a uid and a namespace".into()))?;
    tracing::debug!(object = key, "step: apply objects");
    if let Err(e) = apply_objects(stream, namespace, ctx, &objects, &mut observed).await {
        // The status still tells what went wrong; the error drives the backoff.
        observed.apply_error = Some((e.reason(), e.to_string()));
        let new = status::stream_status(old, observed, &now());
        if old != Some(&new) {
            patch_status(ctx, stream, &new).await?;
            announce(ctx, stream, old, &new).await;
        }
        return Err(e);
    }
    observed.destinations = destinations(&objects.topology, namespace);
    let deployed = old.and_then(|s| s.observed_generation);
    let spec_changed = deployed.is_some() && deployed != stream.metadata.generation;
    let topology = match resolve::cached_broker_uri(ctx, namespace, &wiring).await {
        Ok(uri) => {
            tracing::debug!(object = key, "step: declare topology");
            let declared = ctx.amqp.declare(&uri, &objects.topology).await;
            if declared.is_ok()
                && spec_changed
                && stream.spec.deletion_policy == DeletionPolicy::Delete
            {
                prune(stream, namespace, ctx, &uri, &objects.topology).await;
            }
            declared
        }
        Err(e) => Err(e),
    };
    let action = match &topology {
        Ok(()) => {
            ctx.succeeded(key);
            Action::requeue(ctx.settings.resync)
        }
        Err(e) => {
            if broker_ready {
                observed.broker = BrokerState::NotReady(e.reason(), e.to_string());
            }
            // Exponential, but never slower than the periodic re-declaration.
            Action::requeue(ctx.backoff_delay(key).min(ctx.settings.resync))
        }
    };
    observed.topology = Some(topology.map_err(|e| (e.reason(), e.to_string())));
    let new = status::stream_status(old, observed, &now());
    tracing::debug!(object = key, "step: status");
    if old != Some(&new) {
        patch_status(ctx, stream, &new).await?;
        announce(ctx, stream, old, &new).await;
    }
    Ok(action)
}

/// Applies the Stream's Deployments and Services, recording what the API server stored.
async fn apply_objects(
    stream: &Stream,
    namespace: &str,
    ctx: &Context,
    objects: &build::StreamObjects,
    observed: &mut Observed,
) -> Result<()> {
    for (deployment, workload) in objects.deployments.iter().zip(&objects.workloads) {
        let applied = apply::apply(&ctx.client, deployment).await?;
        observed
            .workloads
            .push(status::workload_status(workload, &applied));
    }
    for service in &objects.services {
        apply::apply(&ctx.client, service).await?;
    }
    // Only a spec change can orphan an object: skip the two LISTs otherwise.
    let deployed = stream.status.as_ref().and_then(|s| s.observed_generation);
    if deployed.is_some() && deployed != stream.metadata.generation {
        remove_orphans(stream, namespace, ctx, objects).await?;
    }

    Ok(())
}

async fn remove_orphans(
    stream: &Stream,
    namespace: &str,
    ctx: &Context,
    objects: &build::StreamObjects,
) -> Result<()> {
    let name = stream.name_any();
    let selector = format!("{LABEL_STREAM}={name}");
    let keep_deployments: Vec<String> = objects.workloads.iter().map(|w| w.name.clone()).collect();
    let keep_services: Vec<String> = objects.services.iter().map(|s| s.name_any()).collect();
    let mut removed =
        apply::remove_orphans::<Deployment>(&ctx.client, namespace, &selector, &keep_deployments)
            .await?;
    removed.extend(
        apply::remove_orphans::<Service>(&ctx.client, namespace, &selector, &keep_services).await?,
    );
    if !removed.is_empty() {
        ctx.event(
            stream,
            false,
            "OrphansRemoved",
            format!(
                "removed objects no longer in the spec: {}",
                removed.join(", ")
            ),
        )
        .await;
    }

    Ok(())
}

/// What the namespace's other live Streams on the same broker declare.
async fn others_topology(ctx: &Context, stream: &Stream, namespace: &str) -> Result<Topology> {
    let name = stream.name_any();
    Ok(Topology::merge(
        other_streams(ctx, namespace)
            .await?
            .iter()
            .filter(|o| {
                o.name_any() != name
                    && o.metadata.deletion_timestamp.is_none()
                    && o.spec.broker == stream.spec.broker
            })
            .map(|o| build::stream::stream_topology(o, namespace, QueueType::Classic)),
    ))
}

/// After a spec change, deletes what the previous spec declared and neither
/// this spec nor another Stream declares now. Failures only warn: the
/// objects are harmless, and the Stream's deletion retries nothing of it.
async fn prune(stream: &Stream, namespace: &str, ctx: &Context, uri: &str, current: &Topology) {
    let Some(previous) = stream
        .status
        .as_ref()
        .map(|s| topology::from_destinations(&s.destinations))
    else {
        return;
    };
    let others = match others_topology(ctx, stream, namespace).await {
        Ok(t) => t,
        Err(_) => return,
    };
    let stale = unshared(&previous, &Topology::merge([current.clone(), others]));
    if stale.queues.is_empty() && stale.exchanges.is_empty() {
        return;
    }
    match ctx.amqp.delete(uri, &stale).await {
        Ok(()) => {
            let note = format!(
                "deleted what the spec no longer declares: {}",
                describe_topology(&stale)
            );
            ctx.event(stream, false, "TopologyPruned", note).await;
        }
        Err(e) => {
            let note = format!(
                "could not delete {} ({e}); they stay on the broker",
                describe_topology(&stale)
            );
            ctx.event(stream, true, e.reason(), note).await;
        }
    }
}

/// The Streams of `namespace`, from the watch cache when the controllers run.
async fn other_streams(ctx: &Context, namespace: &str) -> Result<Vec<Stream>> {
    match ctx.streams.get() {
        Some(store) => Ok(store
            .state()
            .iter()
            .filter_map(|s| s.0.as_ref().ok())
            .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
            .cloned()
            .collect()),
        None => Ok(Api::<Stream>::namespaced(ctx.client.clone(), namespace)
            .list(&ListParams::default())
            .await?
            .items),
    }
}

/// Destination -> exchange and queues, for status.
fn destinations(topology: &Topology, namespace: &str) -> Vec<DestinationStatus> {
    let prefix = format!("{namespace}.");
    let mut out: Vec<DestinationStatus> = Vec::new();
    for e in topology
        .exchanges
        .iter()
        .filter(|e| !e.name.ends_with(".dlx"))
    {
        let name = e.name.strip_prefix(&prefix).unwrap_or(&e.name).to_owned();
        let queues = topology
            .queue_names()
            .filter(|q| q.starts_with(&format!("{}.", e.name)))
            .map(str::to_owned)
            .collect();
        out.push(DestinationStatus {
            name,
            exchange: e.name.clone(),
            queues,
        });
    }
    out
}

fn describe_topology(t: &Topology) -> String {
    let mut names: Vec<&str> = t.queue_names().collect();
    names.extend(t.exchanges.iter().map(|e| e.name.as_str()));
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

async fn cleanup(stream: &Stream, namespace: &str, ctx: &Context) -> Result<Action> {
    if !stream.finalizers().iter().any(|f| f == STREAM_FINALIZER) {
        return Ok(Action::await_change());
    }
    let mine = build::stream::stream_topology(stream, namespace, QueueType::Classic);
    if stream.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            stream,
            false,
            "TopologyRetained",
            format!("deletionPolicy Retain: kept {}", describe_topology(&mine)),
        )
        .await;
        set_finalizers(ctx, stream, false).await?;
        return Ok(Action::await_change());
    }
    // Destinations another live Stream on the same broker still uses stay.
    let others = others_topology(ctx, stream, namespace).await?;
    let doomed = unshared(&mine, &others);
    let result = match resolve::broker(&ctx.client, namespace, &stream.spec.broker).await? {
        None => Err(Error::BrokerNotFound(stream.spec.broker.clone())),
        Some(broker) => {
            match resolve::broker_uri(&ctx.client, namespace, &build::broker_wiring(&broker)).await
            {
                Ok(uri) => ctx.amqp.delete(&uri, &doomed).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => {
            ctx.event(
                stream,
                false,
                "TopologyDeleted",
                format!("deleted {}", describe_topology(&doomed)),
            )
            .await;
            set_finalizers(ctx, stream, false).await?;
            Ok(Action::await_change())
        }
        Err(e) => {
            let since = stream
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(jiff::Timestamp::now);
            let waited = jiff::Timestamp::now().duration_since(since).unsigned_abs();
            let give_up =
                matches!(e, Error::BrokerNotFound(_)) || waited >= ctx.settings.cleanup_give_up;
            if give_up {
                ctx.event(
                    stream,
                    true,
                    "TopologyLeftBehind",
                    format!(
                        "released the finalizer without deleting ({e}); left on the broker: {}",
                        describe_topology(&doomed)
                    ),
                )
                .await;
                set_finalizers(ctx, stream, false).await?;
                return Ok(Action::await_change());
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
                left.min(std::time::Duration::from_secs(5))
                    .max(std::time::Duration::from_millis(200)),
            ))
        }
    }
}

/// The namespaces' Streams that use `broker` (to reconcile them when it changes).
pub fn uses_broker(stream: &Stream, namespace: Option<&str>, broker: &str) -> bool {
    stream.spec.broker == broker && stream.meta().namespace.as_deref() == namespace
}
