//! The resolve step: everything a reconcile depends on but does not own,
//! read once — a Stream's EventBroker (from the watch cache), how Streams
//! reach it ([`BrokerWiring`]) and the broker URI from its Secret (cached
//! for a few seconds) — plus the namespace's Streams, for what they share,
//! and its AppRegistrations, for the Streams written as definitions.

use std::{collections::BTreeMap, sync::Arc};

use eventflow_contract::{env, tls};
use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    core::DeserializeGuard,
    runtime::reflector::{ObjectRef, Store},
};

use crate::{
    Error, Result,
    api::{AppRegistration, AppRegistrationSpec, EventBroker, Stream, is_true},
    connection::{BrokerWiring, broker_wiring},
    context::Context,
    dataflow,
    status::READY,
};

/// A Stream's broker as the reconcile found it.
#[derive(Debug)]
pub enum Broker {
    /// No EventBroker of that name in the namespace: nothing is deployed.
    Missing,
    Found(Box<FoundBroker>),
}

#[derive(Debug)]
pub struct FoundBroker {
    pub wiring: BrokerWiring,
    /// The EventBroker's Ready condition.
    pub ready: bool,
    /// Its resourceVersion: a changed broker is declared on again.
    pub version: String,
    /// The AMQP URI from the broker's Secret, or why it cannot be read.
    pub uri: Result<String>,
}

/// Resolves the broker `name` of a Stream in `namespace`: the EventBroker,
/// its wiring and its URI. An error is a failed API read; a missing Secret
/// or key is reported in [`FoundBroker::uri`].
pub async fn stream_broker(ctx: &Context, namespace: &str, name: &str) -> Result<Broker> {
    let Some(broker) = cached_broker(ctx, namespace, name).await? else {
        return Ok(Broker::Missing);
    };
    let wiring = broker_wiring(&broker);
    let uri = cached_broker_uri(ctx, namespace, &wiring).await;
    Ok(Broker::Found(Box::new(FoundBroker {
        ready: broker
            .status
            .as_ref()
            .is_some_and(|s| is_true(&s.conditions, READY)),
        version: broker.resource_version().unwrap_or_default(),
        wiring,
        uri,
    })))
}

/// The Streams of one namespace, shared with the watch cache (not copied).
pub struct Streams(Vec<Arc<DeserializeGuard<Stream>>>);

impl Streams {
    /// Every Stream that parsed.
    pub fn iter(&self) -> impl Iterator<Item = &Stream> {
        self.0.iter().filter_map(|s| s.0.as_ref().ok())
    }
}

/// The Streams of `namespace`, from the watch cache when the controllers run.
pub async fn namespace_streams(ctx: &Context, namespace: &str) -> Result<Streams> {
    match ctx.streams.get() {
        Some(store) if has_listed(store) => Ok(Streams(
            store
                .state()
                .into_iter()
                .filter(|s| s.meta().namespace.as_deref() == Some(namespace))
                .collect(),
        )),
        _ => Ok(Streams(
            Api::<Stream>::namespaced(ctx.client.clone(), namespace)
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|s| Arc::new(DeserializeGuard(Ok(s))))
                .collect(),
        )),
    }
}

/// The Streams of `namespace` as the topology sees them: definitions
/// expanded. One whose definition cannot be expanded deploys nothing and is
/// left out.
pub async fn expanded_streams(ctx: &Context, namespace: &str) -> Result<Vec<Stream>> {
    let streams = namespace_streams(ctx, namespace).await?;
    let registrations = if streams.iter().any(|s| s.spec.definition.is_some()) {
        registrations(ctx, namespace).await?
    } else {
        BTreeMap::new()
    };
    Ok(streams
        .iter()
        .filter_map(|s| dataflow::effective(s, &registrations).ok())
        .map(std::borrow::Cow::into_owned)
        .collect())
}

/// The AppRegistrations of `namespace` by name, from the watch cache when the controllers run.
pub async fn registrations(
    ctx: &Context,
    namespace: &str,
) -> Result<BTreeMap<String, AppRegistrationSpec>> {
    Ok(match ctx.registrations.get() {
        Some(store) if has_listed(store) => {
            let cached = store.state();
            dataflow::by_name(
                cached
                    .iter()
                    .filter(|r| r.meta().namespace.as_deref() == Some(namespace))
                    .filter_map(|r| r.0.as_ref().ok()),
            )
        }
        _ => dataflow::by_name(
            &Api::<AppRegistration>::namespaced(ctx.client.clone(), namespace)
                .list(&ListParams::default())
                .await?
                .items,
        ),
    })
}

/// The EventBroker from the watch cache once the cache has listed, else
/// (no controllers running, or a new leader whose EventBroker watch has not
/// listed yet) from the API.
pub async fn cached_broker(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<EventBroker>> {
    match ctx.brokers.get() {
        Some(store) if has_listed(store) => Ok(store
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|guard| guard.0.clone().ok())),
        _ => broker(&ctx.client, namespace, name).await,
    }
}

/// Whether the store's first list is complete, without waiting for it.
/// Never `.await` `wait_until_ready` from concurrent reconciles: the store
/// remembers only the last waiter's waker, so every earlier waiter sleeps
/// forever and its object is never reconciled again (seen after a leader
/// change, with every Stream reconciled at once).
pub fn has_listed<K>(store: &Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|r| r.is_ok())
}

/// The broker URI for Streams, reused for a few seconds.
pub async fn cached_broker_uri(
    ctx: &Context,
    namespace: &str,
    wiring: &BrokerWiring,
) -> Result<String> {
    let key = (
        namespace.to_owned(),
        wiring.secret.name.clone(),
        wiring.secret.key.clone(),
    );
    if let Some(uri) = ctx.cached_uri(&key) {
        return Ok(uri);
    }
    let uri = broker_uri(ctx, namespace, wiring).await?;
    ctx.cache_uri(key, &uri);
    Ok(uri)
}

/// The EventBroker `name` in `namespace`, `None` when it does not exist.
pub async fn broker(client: &Client, namespace: &str, name: &str) -> Result<Option<EventBroker>> {
    Ok(Api::<EventBroker>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?)
}

/// The value of `key` in Secret `name`; a missing Secret or key is an [`Error::Secret`].
pub async fn secret_value(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?;
    secret_key(secret.as_ref(), name, key)
}

/// The value of `key` in `secret` (read as Secret `name`); a missing
/// Secret or key is an [`Error::Secret`].
fn secret_key(secret: Option<&Secret>, name: &str, key: &str) -> Result<String> {
    let problem = |problem: String| Error::Secret {
        secret: name.to_owned(),
        problem,
    };
    let secret = secret.ok_or_else(|| problem("does not exist".into()))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| problem(format!("has no key {key}")))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| problem(format!("key {key} is not UTF-8")))
}

/// The AMQP URI Streams of this broker use. The CA beside it in the same
/// Secret (key `ca.crt`, optional) is what the operator's connections to
/// that URI verify an `amqps` broker with ([`crate::topology::Amqp::trust`]).
pub async fn broker_uri(ctx: &Context, namespace: &str, wiring: &BrokerWiring) -> Result<String> {
    let name = &wiring.secret.name;
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await?;
    let uri = secret_key(secret.as_ref(), name, &wiring.secret.key)?;
    let ca = match secret_key(secret.as_ref(), name, env::BROKER_CA_KEY) {
        Ok(ca) => {
            tls::check_ca(&ca).map_err(|problem| Error::Secret {
                secret: name.clone(),
                problem: format!("key {}: {problem}", env::BROKER_CA_KEY),
            })?;
            Some(ca)
        }
        Err(_) => None,
    };
    ctx.amqp.trust(&uri, ca);
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use http::Response;
    use kube::{
        client::Body,
        core::DeserializeGuard,
        runtime::{reflector, watcher},
    };
    use serde_json::json;

    use super::*;
    use crate::context::{FakeApi, Settings};

    fn broker_json(name: &str) -> serde_json::Value {
        json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
            "metadata": {"name": name, "namespace": "demo", "uid": "u-1"},
            "spec": {"mode": "managed"}
        })
    }

    type BrokerWriter = reflector::store::Writer<DeserializeGuard<EventBroker>>;

    /// A context on a fake API server, with an EventBroker cache that has
    /// not listed yet; returns the cache's writer too.
    fn context() -> (Arc<Context>, BrokerWriter, FakeApi) {
        let (ctx, api) = Context::fake(Settings::default());
        let (reader, writer) = reflector::store();
        let _ = ctx.brokers.set(reader);
        (ctx, writer, api)
    }

    #[tokio::test]
    async fn before_the_cache_has_listed_every_caller_reads_the_broker_from_the_api_at_once() {
        let (ctx, _writer, mut handle) = context();
        assert!(!has_listed(ctx.brokers.get().unwrap()));
        // Reconciles of several Streams at once, as when a new leader starts.
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let ctx = ctx.clone();
                tokio::spawn(async move { cached_broker(&ctx, "demo", "rabbit").await })
            })
            .collect();
        for _ in 0..3 {
            let (request, send) =
                tokio::time::timeout(Duration::from_secs(5), handle.next_request())
                    .await
                    .expect("a caller waited for the cache instead of asking the API")
                    .unwrap();
            assert_eq!(
                request.uri().path(),
                "/apis/eventflow.dev/v1alpha1/namespaces/demo/eventbrokers/rabbit"
            );
            send.send_response(
                Response::builder()
                    .body(Body::from(broker_json("rabbit").to_string().into_bytes()))
                    .unwrap(),
            );
        }
        for caller in callers {
            let broker = tokio::time::timeout(Duration::from_secs(5), caller)
                .await
                .expect("a caller never finished")
                .unwrap()
                .unwrap();
            assert_eq!(broker.unwrap().metadata.name.as_deref(), Some("rabbit"));
        }
    }

    #[tokio::test]
    async fn once_the_cache_has_listed_the_broker_comes_from_it_without_a_request() {
        let (ctx, mut writer, mut handle) = context();
        let cached: DeserializeGuard<EventBroker> =
            serde_json::from_value(broker_json("rabbit")).unwrap();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(cached));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(has_listed(ctx.brokers.get().unwrap()));
        let lookup = |name: &'static str| {
            let ctx = ctx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), cached_broker(&ctx, "demo", name))
                    .await
                    .expect("the lookup asked the API (nobody answers here)")
                    .unwrap()
            }
        };
        let found = lookup("rabbit").await;
        assert_eq!(found.unwrap().metadata.name.as_deref(), Some("rabbit"));
        assert!(
            lookup("other").await.is_none(),
            "a broker the cache does not hold does not exist"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(100), handle.next_request())
                .await
                .is_err(),
            "no API request"
        );
    }
}
