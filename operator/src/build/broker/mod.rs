//! A managed EventBroker's desired objects: a RabbitMQ StatefulSet (1 node,
//! or 3 clustered through classic peer discovery over the headless Service,
//! with quorum queues), its client and headless Services and a ConfigMap
//! with `rabbitmq.conf` and `enabled_plugins`. Only settings that RabbitMQ
//! 3.10 and 4.x both understand are used. The credential and Erlang cookie
//! Secrets are generated once (see [`credentials_data`]) and never rewritten.
//!
//! One file per object: [`config`] (the ConfigMap), [`services`] (client
//! and headless Services), [`stateful_set`] (the pods); [`erlang`] derives
//! the VM's scheduler count from the broker's CPU.

mod config;
mod erlang;
mod services;
mod stateful_set;

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{ConfigMap, Service},
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::Resource;

pub use self::config::rabbitmq_conf;
use crate::{
    api::{EventBroker, ManagedBroker},
    naming::{self, BrokerNames},
};
pub use crate::{
    backlog::MANAGEMENT_URI_KEY,
    connection::{AMQP_PORT, URI_KEY},
};

/// Official image, used unless `spec.managed.image` says otherwise.
pub const DEFAULT_IMAGE: &str = "rabbitmq:4.1-management";
pub const MANAGEMENT_PORT: i32 = 15672;
pub const PROMETHEUS_PORT: i32 = 15692;
/// The user the operator creates on a managed broker.
pub const USERNAME: &str = "eventflow";
const COOKIE_KEY: &str = "cookie";

/// Everything a managed broker runs on, except its generated Secrets.
#[derive(Clone, Debug)]
pub struct BrokerObjects {
    pub config: ConfigMap,
    pub client_service: Service,
    pub headless_service: Service,
    pub stateful_set: StatefulSet,
}

/// The string data of a managed broker's credentials Secret, from a fresh password.
pub fn credentials_data(broker: &EventBroker, password: &str) -> BTreeMap<String, String> {
    let name = broker.metadata.name.as_deref().unwrap_or_default();
    let namespace = broker.metadata.namespace.as_deref().unwrap_or_default();
    let host = format!("{name}.{namespace}.svc");
    BTreeMap::from([
        ("username".into(), USERNAME.into()),
        ("password".into(), password.into()),
        ("host".into(), host.clone()),
        ("port".into(), AMQP_PORT.to_string()),
        (
            URI_KEY.into(),
            format!("amqp://{USERNAME}:{password}@{host}:{AMQP_PORT}/%2f"),
        ),
        (
            MANAGEMENT_URI_KEY.into(),
            management_uri(&host, USERNAME, password),
        ),
    ])
}

/// The management API URI of a managed broker: the host of its AMQP URI on
/// the management port (as [`crate::backlog::management::Management::of_managed`]
/// calls it), without a path — KEDA's rabbitmq trigger takes a last path
/// segment for the vhost, the backlog step for an API prefix.
fn management_uri(host: &str, user: &str, password: &str) -> String {
    format!("http://{user}:{password}@{host}:{MANAGEMENT_PORT}")
}

/// The keys a credentials Secret written before they existed lacks, derived
/// from the keys it has (its password is kept): today [`MANAGEMENT_URI_KEY`].
pub fn missing_credentials(data: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut missing = BTreeMap::new();
    if !data.contains_key(MANAGEMENT_URI_KEY)
        && let (Some(host), Some(password)) = (data.get("host"), data.get("password"))
    {
        let user = data.get("username").map_or(USERNAME, String::as_str);
        missing.insert(
            MANAGEMENT_URI_KEY.to_owned(),
            management_uri(host, user, password),
        );
    }
    missing
}

/// The string data of the Erlang cookie Secret.
pub fn cookie_data(cookie: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(COOKIE_KEY.into(), cookie.into())])
}

fn meta(name: &str, namespace: &str, broker: &str, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(naming::broker_labels(broker)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

/// Metadata of a generated Secret of the broker (credentials or cookie).
pub fn secret_meta(broker: &EventBroker, secret: &str) -> Option<ObjectMeta> {
    let owner = broker.controller_owner_ref(&())?;
    Some(meta(
        secret,
        broker.metadata.namespace.as_deref()?,
        broker.metadata.name.as_deref()?,
        &owner,
    ))
}

/// What every object of one managed broker is built from.
struct Managed<'a> {
    spec: &'a ManagedBroker,
    owner: OwnerReference,
    name: &'a str,
    namespace: &'a str,
    names: BrokerNames,
}

impl Managed<'_> {
    /// Metadata of one of the broker's objects called `object`.
    fn meta(&self, object: &str) -> ObjectMeta {
        meta(object, self.namespace, self.name, &self.owner)
    }
}

/// The desired objects of a managed broker (`None` unless managed and stored).
pub fn build_broker(broker: &EventBroker) -> Option<BrokerObjects> {
    let name = broker.metadata.name.as_deref()?;
    let managed = Managed {
        spec: broker.spec.managed.as_ref()?,
        owner: broker.controller_owner_ref(&())?,
        name,
        namespace: broker.metadata.namespace.as_deref()?,
        names: naming::broker(name),
    };
    Some(BrokerObjects {
        config: config::config_map(&managed),
        client_service: services::client_service(&managed),
        headless_service: services::headless_service(&managed),
        stateful_set: stateful_set::stateful_set(&managed),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn broker() -> EventBroker {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
            "metadata": {"name": "rabbit", "namespace": "demo"},
            "spec": {"managed": {}}
        }))
        .unwrap()
    }

    #[test]
    fn credentials_carry_the_management_uri_of_the_amqp_host() {
        let data = credentials_data(&broker(), "s3cret");
        assert_eq!(
            data[URI_KEY],
            "amqp://eventflow:s3cret@rabbit.demo.svc:5672/%2f"
        );
        assert_eq!(
            data[MANAGEMENT_URI_KEY],
            "http://eventflow:s3cret@rabbit.demo.svc:15672"
        );
        // What the backlog step derives from the AMQP URI is the same API.
        let amqp: lapin::uri::AMQPUri = data[URI_KEY].parse().unwrap();
        let derived = crate::backlog::management::Management::of_managed(&amqp);
        let parsed =
            crate::backlog::management::Management::parse(&data[MANAGEMENT_URI_KEY]).unwrap();
        assert_eq!(parsed, derived);
        assert!(missing_credentials(&data).is_empty());
    }

    #[test]
    fn an_older_secret_gets_the_management_uri_from_its_own_password() {
        let mut old = credentials_data(&broker(), "kept");
        old.remove(MANAGEMENT_URI_KEY);
        assert_eq!(
            missing_credentials(&old),
            BTreeMap::from([(
                MANAGEMENT_URI_KEY.to_owned(),
                "http://eventflow:kept@rabbit.demo.svc:15672".to_owned()
            )])
        );
        old.remove("password");
        assert!(
            missing_credentials(&old).is_empty(),
            "nothing derived without a password"
        );
    }
}
