//! The watches behind the controllers and the caches reconciles read:
//! Streams (spec and deletion changes only), EventBrokers, AppRegistrations,
//! and the Deployments and Services we own. Cached objects keep no managedFields
//! (nothing reads them; they are most of an object) and Deployments no pod
//! template (status reads only `spec.replicas` and `status`). An owned
//! object's change wakes its Stream — drift correction, rollout status —
//! except the echo of our own write, which the reconcile that wrote it has
//! already seen (see `apply::record`).

use std::sync::Arc;

use futures::{Stream as Watch, TryStreamExt, future::ready};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Secret, Service},
    networking::v1::NetworkPolicy,
};
use kube::{
    Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        PredicateConfig, WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};

use super::api;
use crate::{
    api::{AppRegistration, EventBroker, Stream},
    context::Context,
    naming::{LABEL_APP, LABEL_MANAGED_BY, MANAGER},
};

/// Objects carrying our `managed-by` label.
pub fn owned() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"))
}

/// Changes of the spec, and the start of a deletion.
fn spec_or_deletion(stream: &DeserializeGuard<Stream>) -> Option<u64> {
    let meta = stream.meta();
    let generation = u64::try_from(meta.generation.unwrap_or(0)).unwrap_or(0);
    Some(generation.wrapping_mul(2) + u64::from(meta.deletion_timestamp.is_some()))
}

/// Streams whose spec changed or whose deletion started — not our own
/// status and finalizer writes — and the cache of all of them.
pub fn streams(
    ctx: &Context,
    ns: Option<&str>,
) -> (
    impl Watch<Item = Result<DeserializeGuard<Stream>, watcher::Error>> + Send + 'static,
    Store<DeserializeGuard<Stream>>,
) {
    let (reader, writer) = reflector::store();
    let _ = ctx.streams.set(reader.clone());
    let watch = watcher(
        api::<DeserializeGuard<Stream>>(&ctx.client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|s: &mut DeserializeGuard<Stream>| {
        if let Ok(s) = s.0.as_mut() {
            s.managed_fields_mut().clear();
        }
    })
    .reflect(writer)
    .applied_objects()
    .predicate_filter(spec_or_deletion, PredicateConfig::default());
    (watch, reader)
}

/// EventBrokers (a change wakes the Streams that use it), cached.
pub fn brokers(
    ctx: &Context,
    ns: Option<&str>,
) -> impl Watch<Item = Result<DeserializeGuard<EventBroker>, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store();
    let _ = ctx.brokers.set(reader);
    watcher(
        api::<DeserializeGuard<EventBroker>>(&ctx.client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|b: &mut DeserializeGuard<EventBroker>| {
        if let Ok(b) = b.0.as_mut() {
            b.managed_fields_mut().clear();
        }
    })
    .reflect(writer)
    .applied_objects()
}

pub fn owned_deployments(
    ctx: &Arc<Context>,
    ns: Option<&str>,
) -> impl Watch<Item = Result<Deployment, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store();
    let _ = ctx.deployments.set(reader);
    let echo = ctx.clone();
    watcher(api::<Deployment>(&ctx.client, ns), owned())
        .default_backoff()
        .modify(|d: &mut Deployment| {
            d.managed_fields_mut().clear();
            if let Some(spec) = d.spec.as_mut() {
                spec.template = Default::default();
            }
        })
        .reflect(writer)
        .touched_objects()
        .try_filter(move |d| ready(!echo.applied.is_own_write("Deployment", d.meta())))
}

pub fn owned_services(
    ctx: &Arc<Context>,
    ns: Option<&str>,
) -> impl Watch<Item = Result<Service, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store();
    let _ = ctx.services.set(reader);
    let echo = ctx.clone();
    watcher(api::<Service>(&ctx.client, ns), owned())
        .default_backoff()
        .modify(|s: &mut Service| s.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .try_filter(move |s| ready(!echo.applied.is_own_write("Service", s.meta())))
}

/// Our Streams' NetworkPolicies: a deleted or edited one wakes its Stream,
/// which writes it again; the echo of our own write does not.
pub fn owned_network_policies(
    ctx: &Arc<Context>,
    ns: Option<&str>,
) -> impl Watch<Item = Result<NetworkPolicy, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store();
    let _ = ctx.network_policies.set(reader);
    let echo = ctx.clone();
    watcher(api::<NetworkPolicy>(&ctx.client, ns), owned())
        .default_backoff()
        .modify(|p: &mut NetworkPolicy| p.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .try_filter(move |p| ready(!echo.applied.is_own_write("NetworkPolicy", p.meta())))
}

/// The Secrets of apps' broker users (ours, with an app label): a deleted
/// or edited one wakes its Stream, which makes it again (a deleted one with
/// a new password); the echo of our own write does not.
pub fn owned_secrets(
    ctx: &Arc<Context>,
    ns: Option<&str>,
) -> impl Watch<Item = Result<Secret, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store();
    let _ = ctx.secrets.set(reader);
    let echo = ctx.clone();
    let config =
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER},{LABEL_APP}"));
    watcher(api::<Secret>(&ctx.client, ns), config)
        .default_backoff()
        .modify(|s: &mut Secret| s.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects()
        .try_filter(move |s| {
            ready(
                !echo
                    .applied
                    .is_own_write(crate::users::secret::KIND, s.meta()),
            )
        })
}

/// AppRegistrations (a change or a deletion wakes the namespace's Streams
/// written as definitions), cached.
pub fn registrations(
    ctx: &Context,
    ns: Option<&str>,
) -> impl Watch<Item = Result<DeserializeGuard<AppRegistration>, watcher::Error>> + Send + 'static {
    let (reader, writer) = reflector::store();
    let _ = ctx.registrations.set(reader);
    watcher(
        api::<DeserializeGuard<AppRegistration>>(&ctx.client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|r: &mut DeserializeGuard<AppRegistration>| {
        if let Ok(r) = r.0.as_mut() {
            r.managed_fields_mut().clear();
        }
    })
    .reflect(writer)
    .touched_objects()
}
