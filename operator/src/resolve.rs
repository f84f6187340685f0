//! The first pipeline step: read what a reconcile depends on but does not
//! own — a Stream's EventBroker and the Secret holding the broker's URI.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, runtime::reflector::ObjectRef};

use crate::{Error, Result, api::EventBroker, build::BrokerWiring, context::Context};

/// The EventBroker from the watch cache when the controllers run, else from the API.
pub async fn cached_broker(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<EventBroker>> {
    let Some(store) = ctx.brokers.get() else {
        return broker(&ctx.client, namespace, name).await;
    };
    // Only waits before the first list of EventBrokers completed.
    let _ = store.wait_until_ready().await;
    Ok(store
        .get(&ObjectRef::new(name).within(namespace))
        .and_then(|guard| guard.0.clone().ok()))
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
    let uri = broker_uri(&ctx.client, namespace, wiring).await?;
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
    let problem = |problem: String| Error::Secret {
        secret: name.to_owned(),
        problem,
    };
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| problem("does not exist".into()))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| problem(format!("has no key {key}")))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| problem(format!("key {key} is not UTF-8")))
}

/// The AMQP URI Streams of this broker use.
pub async fn broker_uri(client: &Client, namespace: &str, wiring: &BrokerWiring) -> Result<String> {
    secret_value(client, namespace, &wiring.secret.name, &wiring.secret.key).await
}
