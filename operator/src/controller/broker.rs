//! Reconciles one EventBroker: for a managed broker, its generated Secrets
//! (created once), ConfigMap, Services and StatefulSet; for both kinds, an
//! AMQP connection check with the broker's credentials that decides the
//! Ready condition — true only while a connection succeeds.

use std::sync::Arc;

use k8s_openapi::{api::apps::v1::StatefulSet, apimachinery::pkg::apis::meta::v1::Time};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde_json::json;

use eventflow_contract::{env::BROKER_CA_KEY, tls::check_ca};
use k8s_openapi::api::core::v1::Secret;

use crate::{
    Error, Result,
    api::{BrokerPhase, EventBroker, EventBrokerStatus, set_condition},
    apply,
    build::{
        self,
        broker::{cookie_data, credentials_data, derived_credentials, secret_meta, tls},
    },
    connection::{BrokerWiring, broker_wiring},
    context::Context,
    naming::{self, BrokerNames, MANAGER},
    resolve,
    status::READY,
    topology::redact,
};

pub async fn reconcile(broker: Arc<EventBroker>, ctx: Arc<Context>) -> Result<Action> {
    if broker.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = broker.namespace().unwrap_or_default();
    let wiring = broker_wiring(&broker);
    apply_managed(&broker, &ctx).await?;
    let check = match resolve::broker_uri(&ctx, &namespace, &wiring).await {
        Ok(uri) => ctx.amqp.check(&uri).await.map(|()| uri),
        Err(e) => Err(e),
    };
    let check = match check {
        Ok(uri) => every_node_ready(&broker, &ctx, &namespace)
            .await
            .map(|()| uri),
        Err(e) => Err(e),
    };
    let status = broker_status(&broker, &wiring, &check);
    report(&broker, &ctx, &namespace, &status, &check).await?;
    Ok(Action::requeue(ctx.settings.broker_check))
}

/// A managed broker's Secrets (created once; the credentials' derived keys
/// follow its TLS), ConfigMap, Services and StatefulSet.
async fn apply_managed(broker: &Arc<EventBroker>, ctx: &Context) -> Result<()> {
    let Some(objects) = build::build_broker(broker) else {
        return Ok(());
    };
    let names = naming::broker(&broker.name_any());
    let namespace = broker.namespace().unwrap_or_default();
    let ca = listener_ca(broker, ctx, &names, &namespace).await?;
    let password = apply::random_token(32)?;
    if let Some(meta) = secret_meta(broker, &names.credentials) {
        let data = credentials_data(broker, &password, ca.as_deref());
        if apply::create_secret_once(&ctx.client, meta, data).await? {
            ctx.event(
                broker.as_ref(),
                false,
                "CredentialsGenerated",
                format!("created Secret {}", names.credentials),
            )
            .await;
        } else {
            // The password stays; the URI, port, CA and management URI
            // follow the spec (TLS turned on or off, a Secret written by an
            // older operator).
            let changed = apply::sync_secret(&ctx.client, &namespace, &names.credentials, |data| {
                derived_credentials(data, ca.as_deref())
            })
            .await?;
            if !changed.is_empty() {
                ctx.event(
                    broker.as_ref(),
                    false,
                    "CredentialsUpdated",
                    format!(
                        "updated key(s) {} of Secret {}",
                        changed.join(", "),
                        names.credentials
                    ),
                )
                .await;
            }
        }
    }
    if let Some(meta) = secret_meta(broker, &names.erlang_cookie) {
        apply::create_secret_once(&ctx.client, meta, cookie_data(&apply::random_token(48)?))
            .await?;
    }
    apply::apply(&ctx.client, &objects.config).await?;
    apply::apply(&ctx.client, &objects.headless_service).await?;
    apply::apply(&ctx.client, &objects.client_service).await?;
    apply::apply(&ctx.client, &objects.stateful_set).await?;
    Ok(())
}

/// The CA of a managed broker's TLS listener (`None` without `tls`): from
/// the Secret the user names, else from the certificates the operator
/// generates.
async fn listener_ca(
    broker: &EventBroker,
    ctx: &Context,
    names: &BrokerNames,
    namespace: &str,
) -> Result<Option<String>> {
    let Some(spec) = broker.spec.managed.as_ref().and_then(|m| m.tls.as_ref()) else {
        return Ok(None);
    };
    let secret = match &spec.secret_name {
        Some(given) => given.clone(),
        None => {
            generate_certificates(broker, ctx, names, namespace).await?;
            names.tls.clone()
        }
    };
    let ca = resolve::secret_value(&ctx.client, namespace, &secret, BROKER_CA_KEY).await?;
    check_ca(&ca).map_err(|problem| Error::Secret {
        secret: secret.clone(),
        problem: format!("key {BROKER_CA_KEY}: {problem}"),
    })?;
    Ok(Some(ca))
}

/// Makes the generated CA exist (once) and a server certificate signed by
/// it: issued when missing, and again when the CA is not the one it
/// carries (the CA Secret was deleted: a rotation).
async fn generate_certificates(
    broker: &EventBroker,
    ctx: &Context,
    names: &BrokerNames,
    namespace: &str,
) -> Result<()> {
    let name = broker.name_any();
    let api = Api::<Secret>::namespaced(ctx.client.clone(), namespace);
    let ca = match api.get_opt(&names.ca).await? {
        Some(stored) => apply::secret_text(&stored),
        None => {
            let generated = tls::generate_ca(&name, namespace)?;
            if let Some(meta) = secret_meta(broker, &names.ca)
                && apply::create_secret_once(&ctx.client, meta, generated).await?
            {
                ctx.event(
                    broker,
                    false,
                    "CertificateAuthorityGenerated",
                    format!("created Secret {}", names.ca),
                )
                .await;
            }
            // What was stored (ours, or a concurrent writer's).
            apply::secret_text(&api.get(&names.ca).await?)
        }
    };
    let server = api.get_opt(&names.tls).await?;
    let current = server.as_ref().map(apply::secret_text);
    let carries_the_ca = current.as_ref().is_some_and(|d| {
        d.get(BROKER_CA_KEY) == ca.get(BROKER_CA_KEY)
            && d.contains_key(tls::CERT_KEY)
            && d.contains_key(tls::KEY_KEY)
    });
    if carries_the_ca {
        return Ok(());
    }
    let issued = tls::issue_server(&name, namespace, &ca)?;
    if server.is_some() {
        apply::sync_secret(&ctx.client, namespace, &names.tls, |_| {
            issued.into_iter().map(|(k, v)| (k, Some(v))).collect()
        })
        .await?;
    } else if let Some(meta) = secret_meta(broker, &names.tls) {
        apply::create_secret_once(&ctx.client, meta, issued).await?;
    }
    ctx.event(
        broker,
        false,
        "CertificateIssued",
        format!(
            "issued the broker's server certificate into Secret {}",
            names.tls
        ),
    )
    .await;
    Ok(())
}

/// A managed broker of several nodes is Ready only while every node is:
/// RabbitMQ places a new quorum queue's members on the nodes running when it
/// is declared, and never adds a node that joins later.
async fn every_node_ready(broker: &EventBroker, ctx: &Context, namespace: &str) -> Result<()> {
    let replicas = broker
        .spec
        .managed
        .as_ref()
        .map_or(1, |m| m.replicas.unwrap_or(1));
    if replicas <= 1 {
        return Ok(());
    }
    let name = naming::broker(&broker.name_any()).name;
    let ready = Api::<StatefulSet>::namespaced(ctx.client.clone(), namespace)
        .get_opt(&name)
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.ready_replicas);
    nodes_ready(replicas, ready)
}

/// `Ok` when `ready` (the StatefulSet's ready replicas) reaches `replicas`.
fn nodes_ready(replicas: i32, ready: Option<i32>) -> Result<()> {
    let ready = ready.unwrap_or(0);
    if ready >= replicas {
        Ok(())
    } else {
        Err(crate::Error::NodesNotReady { ready, replicas })
    }
}

/// The status the connection check calls for.
fn broker_status(
    broker: &EventBroker,
    wiring: &BrokerWiring,
    check: &Result<String>,
) -> EventBrokerStatus {
    let mut status = broker.status.clone().unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let generation = broker.metadata.generation;
    match check {
        Ok(uri) => {
            status.phase = BrokerPhase::Ready;
            status.endpoint = wiring.endpoint.clone().or_else(|| Some(redact(uri)));
            set_condition(
                &mut status.conditions,
                READY,
                true,
                "Connected",
                "an AMQP connection with the broker's credentials succeeded",
                generation,
                &now,
            );
        }
        Err(e) => {
            status.phase = match e {
                crate::Error::Secret { .. } => BrokerPhase::Failed,
                crate::Error::NodesNotReady { .. } => BrokerPhase::Pending,
                _ => BrokerPhase::Unreachable,
            };
            status.endpoint = wiring.endpoint.clone().or(status.endpoint);
            set_condition(
                &mut status.conditions,
                READY,
                false,
                e.reason(),
                e.to_string(),
                generation,
                &now,
            );
        }
    }
    status.mode = Some(wiring.mode.to_owned());
    status.observed_generation = generation;
    status.credentials_secret = Some(wiring.secret.name.clone());
    status
}

/// Writes the status when it changed, with an Event when the broker became
/// reachable or stopped being so.
async fn report(
    broker: &Arc<EventBroker>,
    ctx: &Context,
    namespace: &str,
    status: &EventBrokerStatus,
    check: &Result<String>,
) -> Result<()> {
    let old = broker.status.as_ref();
    if old == Some(status) {
        return Ok(());
    }
    let api = Api::<EventBroker>::namespaced(ctx.client.clone(), namespace);
    let body =
        json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker", "status": status});
    api.patch_status(
        &broker.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    let was_ready = old.is_some_and(|s| s.phase == BrokerPhase::Ready);
    match (check, was_ready) {
        (Ok(_), false) => {
            ctx.event(
                broker.as_ref(),
                false,
                "Connected",
                "an AMQP connection with the broker's credentials succeeded".into(),
            )
            .await
        }
        (Err(e), _) if was_ready || old.is_none_or(|s| s.phase != status.phase) => {
            ctx.event(broker.as_ref(), true, e.reason(), e.to_string())
                .await
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_ready_only_with_every_node_ready() {
        assert!(nodes_ready(3, Some(3)).is_ok());
        let err = nodes_ready(3, Some(2)).unwrap_err();
        assert_eq!(err.reason(), "NodesNotReady");
        assert!(err.to_string().starts_with("2 of 3 broker nodes"), "{err}");
        assert!(nodes_ready(3, None).is_err());
        assert!(nodes_ready(1, Some(1)).is_ok());
    }

    #[test]
    fn nodes_not_ready_leave_the_broker_pending_not_unreachable() {
        let broker: EventBroker = serde_json::from_value(serde_json::json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
            "metadata": {"name": "rabbit", "namespace": "demo"},
            "spec": {"managed": {"replicas": 3, "storage": {"size": "1Gi"}}},
        }))
        .unwrap();
        let wiring = broker_wiring(&broker);
        let status = broker_status(&broker, &wiring, &Err(nodes_ready(3, Some(1)).unwrap_err()));
        assert_eq!(status.phase, BrokerPhase::Pending);
        let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NodesNotReady")
        );
    }
}
