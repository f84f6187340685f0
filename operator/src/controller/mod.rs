//! The controllers (Streams, EventBrokers, DeadLetterRedrives) and their watches. Streams are watched through
//! `DeserializeGuard`, so one object that does not parse is reported with a
//! Warning Event and never breaks the watch for the others. Owned
//! Deployments, Services and StatefulSets trigger their owner (drift
//! correction); an EventBroker change triggers the Streams that use it.

pub mod broker;
pub mod finalizer;
pub mod redrive;
pub mod stream;
mod watches;

use std::{future::Future, sync::Arc, time::Instant};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Service},
};
use kube::{
    Api, Client, Resource,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use crate::{
    Error, Result,
    api::{DeadLetterRedrive, EventBroker},
    context::Context,
};

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Runs a typed reconcile for a guarded object, with metrics and the malformed-object path.
async fn guarded<K, F, Fut>(
    obj: Arc<DeserializeGuard<K>>,
    ctx: Arc<Context>,
    kind: &'static str,
    f: F,
) -> Result<Action>
where
    K: Resource<DynamicType = ()> + Clone,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let started = Instant::now();
    ctx.metrics.reconciled(kind);
    let result = match &obj.0 {
        Ok(inner) => {
            let limit = ctx.settings.reconcile_timeout;
            tokio::time::timeout(limit, f(Arc::new(inner.clone()), ctx.clone()))
                .await
                .unwrap_or(Err(Error::ReconcileTimeout(limit)))
        }
        Err(invalid) => {
            ctx.event(
                obj.as_ref(),
                true,
                "MalformedObject",
                format!("ignored until fixed: {}", invalid.error),
            )
            .await;
            Err(Error::Malformed(invalid.error.clone()))
        }
    };
    ctx.metrics.observe(kind, started.elapsed());
    if let Err(e) = &result {
        ctx.metrics.failed(kind, e.reason());
        if !matches!(e, Error::Malformed(_)) {
            ctx.event(obj.as_ref(), true, e.reason(), e.to_string())
                .await;
        }
        tracing::warn!(kind, object = key(obj.as_ref()), reason = e.reason(), error = %e, "reconcile failed");
    }
    result
}

fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<DeserializeGuard<K>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    if matches!(error, Error::Malformed(_)) {
        return Action::await_change();
    }
    ctx.backoff(&format!("{}/{}", K::kind(&()), key(obj.as_ref())))
}

/// Runs the controllers until `stop` turns true (then they finish their current reconciles).
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let shutdown = move || {
        let mut rx = stop.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let (stream_watch, stream_reader) = watches::streams(&ctx, ns);
    let broker_watch = watches::brokers(&ctx, ns);
    let registration_watch = watches::registrations(&ctx, ns);
    let store = stream_reader.clone();
    let definitions = stream_reader.clone();
    let config = kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency);
    let streams = Controller::for_stream(stream_watch, stream_reader)
        .with_config(config.clone())
        .owns_stream(watches::owned_deployments(&ctx, ns))
        .owns_stream(watches::owned_services(&ctx, ns))
        .owns_stream(watches::owned_network_policies(&ctx, ns))
        .owns_stream(watches::owned_secrets(&ctx, ns))
        .watches_stream(broker_watch, move |broker| {
            let name = broker.meta().name.clone().unwrap_or_default();
            let namespace = broker.meta().namespace.clone();
            store
                .state()
                .into_iter()
                .filter(|s| {
                    s.0.as_ref()
                        .is_ok_and(|s| stream::uses_broker(s, namespace.as_deref(), &name))
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(registration_watch, move |registration| {
            let namespace = registration.meta().namespace.clone();
            definitions
                .state()
                .into_iter()
                .filter(|s| {
                    s.0.as_ref().is_ok_and(|s| {
                        s.spec.definition.is_some() && s.metadata.namespace == namespace
                    })
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown())
        .run(
            |obj, ctx| guarded(obj, ctx, "Stream", stream::reconcile),
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    let brokers = Controller::new(
        api::<DeserializeGuard<EventBroker>>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(config.clone())
    .owns(api::<StatefulSet>(&client, ns), watches::owned())
    .owns(api::<Service>(&client, ns), watches::owned())
    .owns(api::<ConfigMap>(&client, ns), watches::owned())
    .graceful_shutdown_on(shutdown())
    .run(
        |obj, ctx| guarded(obj, ctx, "EventBroker", broker::reconcile),
        error_policy,
        ctx.clone(),
    )
    .for_each(|_| async {});

    let ctx_autoscale = ctx.clone();
    let redrives = Controller::new(
        api::<DeserializeGuard<DeadLetterRedrive>>(&client, ns),
        watcher::Config::default(),
    )
    .with_config(config)
    .graceful_shutdown_on(shutdown())
    .run(
        |obj, ctx| guarded(obj, ctx, "DeadLetterRedrive", redrive::reconcile),
        error_policy,
        ctx,
    )
    .for_each(|_| async {});

    let autoscaler = crate::autoscale::run(ctx_autoscale, shutdown());

    tokio::join!(streams, brokers, redrives, autoscaler);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Response;
    use http_body_util::BodyExt;
    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::{
        api::Stream,
        context::{FakeApi, Settings},
    };

    /// Answers the one request expected: a Warning Event `reason` about Stream `name` in `demo`.
    fn expect_warning_event(
        mut api: FakeApi,
        reason: &'static str,
        name: &'static str,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let (request, send) = api.next_request().await.unwrap();
            assert_eq!(
                request.uri().path(),
                "/apis/events.k8s.io/v1/namespaces/demo/events"
            );
            let body: serde_json::Value =
                serde_json::from_slice(&request.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            assert_eq!(body["reason"], reason);
            assert_eq!(body["type"], "Warning");
            assert_eq!(body["regarding"]["name"], name);
            send.send_response(
                Response::builder()
                    .body(Body::from(b"{}".to_vec()))
                    .unwrap(),
            );
        })
    }

    #[tokio::test]
    async fn a_stream_that_does_not_parse_gets_a_warning_event_and_waits_for_a_fix() {
        let (ctx, api) = Context::fake(Settings::default());
        // Admission would reject it; an older CRD version, or a bug, may not.
        let guard: DeserializeGuard<Stream> = serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": "broken", "namespace": "demo", "uid": "u-2"},
            "spec": {"apps": "not a list"}
        }))
        .unwrap();
        assert!(guard.0.is_err());
        let guard = Arc::new(guard);
        let server = expect_warning_event(api, "MalformedObject", "broken");
        let result = guarded(guard.clone(), ctx.clone(), "Stream", stream::reconcile).await;
        let error = result.unwrap_err();
        assert_eq!(error.reason(), "MalformedObject");
        assert_eq!(
            error_policy(guard, &error, ctx.clone()),
            Action::await_change()
        );
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(ctx.metrics.render().contains(r#"reason="MalformedObject""#));
    }

    #[tokio::test]
    async fn a_reconcile_that_never_finishes_is_abandoned_with_a_warning_event() {
        let (ctx, api) = Context::fake(Settings {
            reconcile_timeout: Duration::from_millis(200),
            ..Settings::default()
        });
        let guard: Arc<DeserializeGuard<Stream>> = Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
                "metadata": {"name": "stuck", "namespace": "demo", "uid": "u-3"},
                "spec": {"broker": "rabbit", "apps": []}
            }))
            .unwrap(),
        );
        let server = expect_warning_event(api, "ReconcileTimeout", "stuck");
        let never = |_: Arc<Stream>, _: Arc<Context>| std::future::pending::<Result<Action>>();
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            guarded(guard, ctx.clone(), "Stream", never),
        )
        .await
        .expect("the reconcile was not abandoned");
        assert_eq!(result.unwrap_err().reason(), "ReconcileTimeout");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
        assert!(
            ctx.metrics
                .render()
                .contains(r#"reason="ReconcileTimeout""#)
        );
    }
}
