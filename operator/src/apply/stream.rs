//! The apply step of a Stream: its Deployments and Services server-side
//! applied — skipped for an object the watch cache shows still as we wrote
//! it (see [`super::record`]) — and, after a spec change, the objects with
//! its label that the spec no longer asks for deleted (orphans), found in
//! the watch cache rather than by a LIST per reconcile.

use std::fmt::Debug;

use k8s_openapi::{
    NamespaceResourceScope,
    api::{apps::v1::Deployment, core::v1::Service},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Resource, ResourceExt,
    runtime::reflector::{ObjectRef, Store},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{apply, record::Tracking, remove_orphans, remove_unwanted};
use crate::{
    Result, api::WorkloadStatus, build::StreamObjects, context::Context, fingerprint,
    naming::LABEL_STREAM, resolve::has_listed, status, validate::ValidStream,
};

/// Applies every object of a Stream; returns the replica counts of its
/// workloads as the API server holds them.
pub async fn apply_stream(
    ctx: &Context,
    stream: &ValidStream<'_>,
    objects: &StreamObjects,
    spec_changed: bool,
) -> Result<Vec<WorkloadStatus>> {
    let mut workloads = Vec::with_capacity(objects.deployments.len());
    for (deployment, workload) in objects.deployments.iter().zip(&objects.workloads) {
        let stored = apply_owned(
            ctx,
            "Deployment",
            deployment,
            ctx.deployments.get(),
            Tracking::Generation,
        )
        .await?;
        workloads.push(status::workload_status(workload, &stored));
    }
    for service in &objects.services {
        apply_owned(
            ctx,
            "Service",
            service,
            ctx.services.get(),
            Tracking::ResourceVersion,
        )
        .await?;
    }
    // Only a spec change can orphan an object.
    if spec_changed {
        remove_stream_orphans(ctx, stream, objects).await?;
    }
    Ok(workloads)
}

/// Whether `cached` still carries every label and owner reference we set.
fn covers(cached: &ObjectMeta, desired: &ObjectMeta) -> bool {
    let labels = cached.labels.as_ref();
    let owners = cached.owner_references.as_deref().unwrap_or_default();
    desired
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        && desired
            .owner_references
            .iter()
            .flatten()
            .all(|o| owners.contains(o))
}

/// Server-side applies `desired` unless the cache shows it unchanged since
/// our last apply of the same content; returns the stored object.
pub(super) async fn apply_owned<K>(
    ctx: &Context,
    kind: &'static str,
    desired: &K,
    cache: Option<&Store<K>>,
    tracking: Tracking,
) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let print = fingerprint::of(desired);
    if let Some(store) = cache.filter(|s| has_listed(*s))
        && let Some(cached) = store.get(&ObjectRef::from_obj(desired))
        && ctx.applied.unchanged(kind, cached.meta(), print, tracking)
        && covers(cached.meta(), desired.meta())
    {
        return Ok(cached.as_ref().clone());
    }
    let stored = apply(&ctx.client, desired).await?;
    ctx.applied.remember(kind, stored.meta(), print);
    Ok(stored)
}

async fn remove_stream_orphans(
    ctx: &Context,
    stream: &ValidStream<'_>,
    objects: &StreamObjects,
) -> Result<()> {
    let keep_deployments: Vec<String> = objects.workloads.iter().map(|w| w.name.clone()).collect();
    let keep_services: Vec<String> = objects.services.iter().map(|s| s.name_any()).collect();
    let mut removed = orphans::<Deployment>(
        ctx,
        "Deployment",
        stream,
        ctx.deployments.get(),
        &keep_deployments,
    )
    .await?;
    removed.extend(
        orphans::<Service>(ctx, "Service", stream, ctx.services.get(), &keep_services).await?,
    );
    if !removed.is_empty() {
        ctx.event(
            stream.stream,
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

/// Deletes the objects of kind `K` with the Stream's label not in `keep`.
pub(super) async fn orphans<K>(
    ctx: &Context,
    kind: &'static str,
    stream: &ValidStream<'_>,
    cache: Option<&Store<K>>,
    keep: &[String],
) -> Result<Vec<String>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let removed = match cache.filter(|s| has_listed(*s)) {
        None => {
            let selector = format!("{LABEL_STREAM}={}", stream.name);
            remove_orphans::<K>(&ctx.client, stream.namespace, &selector, keep).await?
        }
        Some(store) => {
            let api = Api::<K>::namespaced(ctx.client.clone(), stream.namespace);
            let cached = store.state();
            let ours = cached.iter().map(|o| o.meta()).filter(|m| {
                m.namespace.as_deref() == Some(stream.namespace)
                    && m.labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_STREAM))
                        .map(String::as_str)
                        == Some(stream.name)
            });
            remove_unwanted(&api, ours, keep).await?
        }
    };
    for name in &removed {
        ctx.applied.forget(kind, stream.namespace, name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Response;
    use kube::{
        client::Body,
        runtime::{reflector, watcher},
    };
    use serde_json::json;

    use super::*;
    use crate::context::Settings;

    fn deployment(replicas: i32) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "s-a-worker", "namespace": "demo",
                         "labels": {"eventflow.dev/stream": "s"}},
            "spec": {"replicas": replicas, "selector": {}, "template": {}}
        }))
        .unwrap()
    }

    /// What the API server stores for `desired`: uid, generation, resourceVersion.
    fn stored(desired: &Deployment, generation: i64, rv: &str) -> Deployment {
        let mut d = desired.clone();
        d.metadata.uid = Some("u-1".into());
        d.metadata.generation = Some(generation);
        d.metadata.resource_version = Some(rv.into());
        d
    }

    #[tokio::test]
    async fn an_object_the_cache_shows_as_we_wrote_it_is_not_applied_again_and_an_edited_one_is() {
        let (ctx, mut api) = Context::fake(Settings::default());
        let (reader, mut writer) = reflector::store::<Deployment>();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let _ = ctx.deployments.set(reader);
        let desired = deployment(2);
        let answer = stored(&desired, 1, "10");

        // First: nothing cached, so the apply goes out.
        let reply = answer.clone();
        let server = tokio::spawn(async move {
            let (request, send) = api.next_request().await.unwrap();
            assert_eq!(request.method(), "PATCH");
            assert_eq!(
                request.uri().path(),
                "/apis/apps/v1/namespaces/demo/deployments/s-a-worker"
            );
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
            api
        });
        let apply = |d: Deployment| {
            let ctx = ctx.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    apply_owned(
                        &ctx,
                        "Deployment",
                        &d,
                        ctx.deployments.get(),
                        Tracking::Generation,
                    ),
                )
                .await
            }
        };
        apply(desired.clone()).await.unwrap().unwrap();
        let mut api = server.await.unwrap();

        // The watch brings our write, then the Deployment controller's status write.
        writer.apply_watcher_event(&watcher::Event::Apply(answer.clone()));
        assert!(ctx.applied.is_own_write("Deployment", &answer.metadata));
        let status_write = stored(&desired, 1, "11");
        writer.apply_watcher_event(&watcher::Event::Apply(status_write.clone()));
        assert!(
            !ctx.applied
                .is_own_write("Deployment", &status_write.metadata)
        );
        let again = apply(desired.clone())
            .await
            .expect("no request may be sent (nobody answers now)")
            .unwrap();
        assert_eq!(again.metadata.resource_version.as_deref(), Some("11"));

        // Someone scales it: the generation moves, so it is applied again.
        let mut edited = stored(&deployment(7), 2, "12");
        edited.metadata.uid = Some("u-1".into());
        writer.apply_watcher_event(&watcher::Event::Apply(edited));
        let reply = stored(&desired, 3, "13");
        let server = tokio::spawn(async move {
            let (request, send) = api.next_request().await.unwrap();
            assert_eq!(request.method(), "PATCH");
            send.send_response(
                Response::builder()
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        });
        let restored = apply(desired).await.unwrap().unwrap();
        assert_eq!(restored.spec.unwrap().replicas, Some(2));
        server.await.unwrap();
    }
}
