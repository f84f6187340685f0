//! Reconciles one Stream in one pass, each step once, in this order:
//!
//! 1. finalizer — added before anything can be declared on the broker;
//! 2. expand — a Data Flow definition becomes apps (with the namespace's
//!    AppRegistrations); one that cannot goes `Failed`, nothing is deployed;
//! 3. validate (pure) — an invalid spec goes `Failed`, nothing is deployed;
//! 4. resolve — the EventBroker, its wiring and URI, read once;
//!    then users — each app's broker user and its Secret ([`users`]);
//! 5. build (pure) — Deployments, Services, bindings and topology;
//!    then the effective spec is recorded as the newest revision;
//! 6. apply — server-side apply of what changed (autoscaled workers' replicas
//!    left to the autoscaler, KEDA's objects for engine KEDA), orphans after a
//!    spec change;
//! 7. topology — declare on the broker (unless freshly declared), prune
//!    after a spec change;
//! 8. status — computed once from what the steps observed, with the
//!    consumer groups' figures read from the broker (backlog), written once
//!    when it changed, with Events for the transitions.
//!
//! A deleted Stream goes to [`finalizer::cleanup`] instead.

use std::{borrow::Cow, sync::Arc};

use eventflow_contract::QueueType;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt, runtime::controller::Action};

use super::finalizer;
use crate::{
    Result,
    api::Stream,
    apply::stream::apply_stream,
    autoscale, backlog, build,
    context::Context,
    dataflow,
    resolve::{self, Broker, FoundBroker},
    revision,
    status::{self, BrokerState, Observed, report::report},
    suspend,
    topology::{self, destinations::to_destinations},
    users,
    validate::{self, Invalid},
};

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

pub async fn reconcile(stream: Arc<Stream>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = stream.namespace().unwrap_or_default();
    if stream.metadata.deletion_timestamp.is_some() {
        return finalizer::cleanup(&stream, &namespace, &ctx).await;
    }
    let key = format!("Stream/{namespace}/{}", stream.name_any());
    if !finalizer::has_finalizer(&stream) {
        tracing::debug!(object = key, "step: add finalizer");
        finalizer::set(&ctx, &stream, true).await?;
    }
    deploy(&stream, &ctx, &key).await
}

/// The Stream with its definition (if any) expanded into apps.
pub async fn expand<'a>(
    ctx: &Context,
    stream: &'a Stream,
) -> Result<std::result::Result<Cow<'a, Stream>, dataflow::ExpandError>> {
    if stream.spec.definition.is_none() {
        return Ok(Ok(Cow::Borrowed(stream)));
    }
    let namespace = stream.namespace().unwrap_or_default();
    let registrations = resolve::registrations(ctx, &namespace).await?;
    Ok(dataflow::effective(stream, &registrations))
}

fn observed(stream: &Stream) -> Observed {
    Observed {
        generation: stream.metadata.generation,
        invalid: None,
        broker: BrokerState::Ready,
        workloads: vec![],
        topology: None,
        destinations: vec![],
        apply_error: None,
        revision: None,
        users: None,
    }
}

async fn deploy(stream: &Stream, ctx: &Context, key: &str) -> Result<Action> {
    let mut observed = observed(stream);
    let old = stream.status.as_ref();

    tracing::debug!(object = key, "step: expand");
    let expanded = match expand(ctx, stream).await? {
        Ok(expanded) => expanded,
        Err(e) => {
            observed.invalid = Some(e.to_string());
            report(ctx, stream, &status::stream_status(old, observed, &now())).await?;
            // A new or changed AppRegistration wakes the Stream.
            return Ok(Action::await_change());
        }
    };
    let stream = expanded.as_ref();

    tracing::debug!(object = key, "step: validate");
    let valid = match validate::validate(stream) {
        Ok(valid) => valid,
        Err(Invalid::NotStored(what)) => {
            return Err(crate::Error::Malformed(format!(
                "a stored Stream has a {what}"
            )));
        }
        Err(invalid) => {
            observed.invalid = Some(invalid.to_string());
            report(ctx, stream, &status::stream_status(old, observed, &now())).await?;
            return Ok(Action::await_change());
        }
    };

    tracing::debug!(object = key, "step: resolve");
    let FoundBroker {
        wiring,
        ready: broker_ready,
        version,
        uri,
    } = match resolve::stream_broker(ctx, valid.namespace, &stream.spec.broker).await? {
        Broker::Found(broker) => *broker,
        Broker::Missing => {
            observed.broker = BrokerState::NotReady(
                "BrokerNotFound",
                format!("EventBroker {} does not exist", stream.spec.broker),
            );
            report(ctx, stream, &status::stream_status(old, observed, &now())).await?;
            return Ok(Action::requeue(ctx.settings.resync));
        }
    };
    if !broker_ready {
        observed.broker = BrokerState::NotReady(
            "BrokerNotReady",
            format!("EventBroker {} is not Ready", stream.spec.broker),
        );
    }

    tracing::debug!(object = key, "step: users");
    let broker_users = match &uri {
        Ok(uri) => match users::converge(ctx, &valid, &wiring, uri, &version).await {
            Ok(users) => users,
            Err(e) => users::from_cache(ctx, &valid, &wiring, &e),
        },
        Err(e) => users::from_cache(ctx, &valid, &wiring, e),
    };
    observed.users = Some(broker_users.clone());

    tracing::debug!(object = key, "step: build");
    let mut objects = build::build_stream(&valid, &wiring, &broker_users);
    // Autoscaled workers: their replicas are the autoscaler's (or KEDA's).
    autoscale::hand_over(ctx, stream, &stream.spec.apps, &mut objects);
    // Suspended: drain, and hold what is drained at zero replicas.
    let suspension = match stream.spec.suspend {
        true => Some(suspend::drain(ctx, stream, &objects, old, &now()).await),
        false => None,
    };
    if let Some(s) = &suspension {
        suspend::hold_at_zero(&mut objects, s);
    }
    let deployed = old.and_then(|s| s.observed_generation);
    let spec_changed = deployed.is_some() && deployed != stream.metadata.generation;
    observed.revision = Some(revision::record(ctx, &valid).await?);

    tracing::debug!(object = key, "step: apply");
    let amqp_uri = uri.as_ref().ok().map(String::as_str);
    match apply_all(ctx, &valid, &wiring, amqp_uri, &objects, spec_changed).await {
        Ok(workloads) => observed.workloads = workloads,
        Err(e) => {
            // The status still tells what went wrong; the error drives the backoff.
            observed.apply_error = Some((e.reason(), e.to_string()));
            report(ctx, stream, &status::stream_status(old, observed, &now())).await?;
            return Err(e);
        }
    }
    observed.destinations = to_destinations(&objects.topology, valid.namespace);

    tracing::debug!(object = key, "step: topology");
    let backlog_uri = uri.as_ref().ok().cloned();
    let declared = match uri {
        Ok(_) if !may_declare(broker_ready, wiring.queue_type) => {
            Err(crate::Error::BrokerNotReady(stream.spec.broker.clone()))
        }
        Ok(uri) => {
            topology::converge(ctx, &valid, &uri, &version, &objects.topology, spec_changed).await
        }
        Err(e) => Err(e),
    };
    let action = match &declared {
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
    observed.topology = Some(declared.map_err(|e| (e.reason(), e.to_string())));

    tracing::debug!(object = key, "step: status");
    let mut status = status::stream_status(old, observed, &now());
    suspend::mark(&mut status, suspension.as_ref(), &now());
    backlog::refresh(ctx, &valid, &wiring, backlog_uri.as_deref(), &mut status).await;
    report(ctx, stream, &status).await?;
    Ok(match &suspension {
        Some(s) if s.reason == suspend::DRAINING => Action::requeue(suspend::DRAIN_POLL),
        _ => action,
    })
}

/// Applies the Stream's objects and its NetworkPolicy, then the KEDA
/// objects of its workers with engine KEDA (after a spec change, the
/// unwanted ones removed).
async fn apply_all(
    ctx: &Context,
    valid: &validate::ValidStream<'_>,
    wiring: &crate::connection::BrokerWiring,
    uri: Option<&str>,
    objects: &build::StreamObjects,
    spec_changed: bool,
) -> Result<Vec<crate::api::WorkloadStatus>> {
    let workloads = apply_stream(ctx, valid, objects, spec_changed).await?;
    crate::apply::network::converge(ctx, valid, wiring, uri).await?;
    let keda = autoscale::keda::wanted(ctx, valid, wiring, uri).await?;
    autoscale::keda::converge(ctx, valid, &keda, spec_changed).await?;
    Ok(workloads)
}

/// Whether the topology step may declare on the broker now. Classic
/// queues: whenever it answers. Quorum queues (three nodes): only while the
/// EventBroker is Ready, i.e. every node is — a quorum queue declared while
/// a node is away lacks a member there for good (RabbitMQ does not add it).
fn may_declare(broker_ready: bool, queue_type: QueueType) -> bool {
    broker_ready || queue_type == QueueType::Classic
}

/// The namespaces' Streams that use `broker` (to reconcile them when it changes).
pub fn uses_broker(stream: &Stream, namespace: Option<&str>, broker: &str) -> bool {
    stream.spec.broker == broker && stream.meta().namespace.as_deref() == namespace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_queues_wait_for_a_ready_broker_and_classic_ones_do_not() {
        assert!(may_declare(true, QueueType::Quorum));
        assert!(!may_declare(false, QueueType::Quorum));
        assert!(may_declare(false, QueueType::Classic));
        assert!(may_declare(true, QueueType::Classic));
    }
}
