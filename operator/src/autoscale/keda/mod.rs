//! `worker.autoscale.engine: KEDA`: instead of deciding itself, the
//! operator emits for each such worker role a KEDA `ScaledObject` and its
//! `TriggerAuthentication` ([`objects`], pure) and KEDA, installed in the
//! cluster, scales the Deployment. [`wanted`] reads what the objects depend
//! on but the spec does not say (does the broker's Secret have a management
//! URI? the apps' vhost); [`converge`] server-side applies them and deletes
//! the Stream's KEDA objects nothing wants any more (engine switched back to
//! Operator, autoscale or app removed, Stream suspended). A cluster without
//! KEDA's CRDs fails only a Stream that asks for KEDA.

pub mod objects;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams},
};

pub use self::objects::{
    KedaBroker, KedaObjects, Protocol, build, keda_broker, keda_workers, scaled_objects,
    trigger_authentications,
};
use crate::{
    Error, Result,
    api::{AutoscaleEngine, AutoscaleStatus},
    apply::remove_unwanted,
    connection::BrokerWiring,
    context::Context,
    naming::{LABEL_MANAGED_BY, LABEL_STREAM, MANAGER},
    validate::ValidStream,
};

/// The KEDA objects of every worker role of `stream` that asks for engine
/// KEDA, by app name; none while the Stream is suspended (KEDA would scale
/// the held workers up again). `wiring` and `uri` (the apps' AMQP URI,
/// `None` when unreadable) are the resolve step's. Reads the broker's
/// Secret (cached for a few seconds) only when an app asks for KEDA.
pub async fn wanted(
    ctx: &Context,
    stream: &ValidStream<'_>,
    wiring: &BrokerWiring,
    uri: Option<&str>,
) -> Result<Vec<(String, KedaObjects)>> {
    let workers: Vec<_> = keda_workers(stream.spec()).collect();
    if workers.is_empty() || stream.spec().suspend {
        return Ok(Vec::new());
    }
    let management = wiring.mode == crate::connection::MANAGED
        || has_management_uri(ctx, stream.namespace, wiring).await?;
    let vhost = uri
        .and_then(|u| u.parse::<lapin::uri::AMQPUri>().ok())
        .map(|u| u.vhost);
    let broker = keda_broker(wiring, management, vhost.as_deref());
    Ok(workers
        .into_iter()
        .filter_map(|(app, autoscale)| {
            let built = build(stream, app, autoscale, &broker);
            if built.is_none() {
                tracing::warn!(
                    stream = stream.name,
                    namespace = stream.namespace,
                    app = app.name,
                    "engine KEDA: no ScaledObject (no worker Deployment, no subscription or no backlogPerReplica)"
                );
            }
            Some((app.name.clone(), built?))
        })
        .collect())
}

/// What [`converge`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converged {
    /// Names of the ScaledObjects (and their TriggerAuthentications) applied.
    pub applied: Vec<String>,
    /// `Kind/name` of each object deleted.
    pub removed: Vec<String>,
}

/// Server-side applies `wanted` (from [`wanted`]): each TriggerAuthentication,
/// then its ScaledObject. With `prune`, then deletes the Stream's
/// ScaledObjects and TriggerAuthentications (found by its labels) not in
/// `wanted`, with a Normal Event naming them; a cluster without KEDA's CRDs
/// has none, which is not an error. Applying to such a cluster is:
/// [`Error::KedaMissing`].
pub async fn converge(
    ctx: &Context,
    stream: &ValidStream<'_>,
    wanted: &[(String, KedaObjects)],
    prune: bool,
) -> Result<Converged> {
    let mut done = Converged::default();
    for (_, objects) in wanted {
        apply(
            ctx,
            &trigger_authentications(),
            &objects.trigger_authentication,
        )
        .await?;
        apply(ctx, &scaled_objects(), &objects.scaled_object).await?;
        done.applied.push(objects.name().to_owned());
    }
    if prune {
        // The ScaledObject first: it uses the TriggerAuthentication.
        for resource in [scaled_objects(), trigger_authentications()] {
            for name in remove_unwanted_of(ctx, stream, &resource, &done.applied).await? {
                done.removed.push(format!("{}/{name}", resource.kind));
            }
        }
    }
    if !done.removed.is_empty() {
        ctx.event(
            stream.stream,
            false,
            "KedaObjectsRemoved",
            format!(
                "removed KEDA objects no worker asks for any more: {}",
                done.removed.join(", ")
            ),
        )
        .await;
    }
    Ok(done)
}

/// The status entry of an app whose worker KEDA scales (no decision of ours to report).
pub fn status(app: &str, objects: &KedaObjects) -> AutoscaleStatus {
    let protocol = objects.scaled_object.data["spec"]["triggers"][0]["metadata"]["protocol"]
        .as_str()
        .unwrap_or_default();
    AutoscaleStatus {
        app: app.to_owned(),
        engine: AutoscaleEngine::Keda,
        reason: Some(format!(
            "KEDA scales it: ScaledObject {} reads {} queue(s) over {protocol}",
            objects.name(),
            objects.queues().len()
        )),
        ..Default::default()
    }
}

/// Server-side applies one KEDA object.
async fn apply(ctx: &Context, resource: &ApiResource, obj: &DynamicObject) -> Result<()> {
    let namespace = obj.metadata.namespace.as_deref().unwrap_or_default();
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, resource);
    match api
        .patch(
            name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if not_served(&e) => Err(Error::KedaMissing(kind(resource))),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the Stream's objects of `resource` not named in `keep`.
async fn remove_unwanted_of(
    ctx: &Context,
    stream: &ValidStream<'_>,
    resource: &ApiResource,
    keep: &[String],
) -> Result<Vec<String>> {
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), stream.namespace, resource);
    let selector = format!(
        "{LABEL_MANAGED_BY}={MANAGER},{LABEL_STREAM}={}",
        stream.name
    );
    let listed = match api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    {
        Ok(listed) => listed,
        // No KEDA in the cluster: nothing of ours to delete.
        Err(e) if not_served(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let metas: Vec<&ObjectMeta> = listed.items.iter().map(|o| &o.metadata).collect();
    remove_unwanted(&api, metas, keep).await
}

/// Whether the API server does not serve the resource at all (its CRD is
/// not installed): a 404 about the path — kube-apiserver answers a plain
/// `404 page not found`, not a Status naming an object or a namespace.
pub fn not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404
        && (s.message.contains("page not found")
            || s.message.contains("could not find the requested resource")))
}

fn kind(resource: &ApiResource) -> &'static str {
    if resource.plural == "scaledobjects" {
        "ScaledObject"
    } else {
        "TriggerAuthentication"
    }
}

/// Whether the broker's Secret has a non-empty [`crate::backlog::MANAGEMENT_URI_KEY`]
/// (read through the same short cache as the backlog step's).
async fn has_management_uri(ctx: &Context, namespace: &str, wiring: &BrokerWiring) -> Result<bool> {
    let uri = crate::backlog::management_uri(ctx, namespace, wiring).await?;
    Ok(!uri.trim().is_empty())
}

#[cfg(test)]
mod tests;
