//! A managed EventBroker's desired objects: a RabbitMQ StatefulSet (1 node,
//! or 3 clustered through classic peer discovery over the headless Service,
//! with quorum queues), its client and headless Services and a ConfigMap
//! with `rabbitmq.conf` and `enabled_plugins`. Only settings that RabbitMQ
//! 3.10 and 4.x both understand are used. The credential and Erlang cookie
//! Secrets are generated once (see [`credentials_data`]) and never rewritten.
//!
//! One file per object: [`config`] (the ConfigMap), [`services`] (client
//! and headless Services), [`stateful_set`] (the pods); [`erlang`] derives
//! the VM's scheduler count from the broker's CPU; [`tls`] its AMQPS
//! listener and generated certificates.

mod config;
mod erlang;
mod services;
mod stateful_set;
pub mod tls;

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
use eventflow_contract::env::BROKER_CA_KEY;

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

/// The string data of a managed broker's credentials Secret, from a fresh
/// password; with `ca` (the CA of its TLS listener) the URI is `amqps`.
pub fn credentials_data(
    broker: &EventBroker,
    password: &str,
    ca: Option<&str>,
) -> BTreeMap<String, String> {
    let name = broker.metadata.name.as_deref().unwrap_or_default();
    let namespace = broker.metadata.namespace.as_deref().unwrap_or_default();
    let host = format!("{name}.{namespace}.svc");
    let mut data = BTreeMap::from([
        ("username".into(), USERNAME.into()),
        ("password".into(), password.into()),
        ("host".into(), host),
    ]);
    data.extend(
        derived_credentials(&data, ca)
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?))),
    );
    data
}

/// The keys of a credentials Secret that follow from its user, password
/// and host and from the broker's TLS (`ca`): `port`, `uri`, `ca.crt` and
/// the management URI. `None` is a key to remove (the CA of a broker that
/// no longer serves TLS). Empty when `data` lacks the password or host.
pub fn derived_credentials(
    data: &BTreeMap<String, String>,
    ca: Option<&str>,
) -> BTreeMap<String, Option<String>> {
    let (Some(host), Some(password)) = (data.get("host"), data.get("password")) else {
        return BTreeMap::new();
    };
    let user = data.get("username").map_or(USERNAME, String::as_str);
    let (scheme, port) = match ca {
        Some(_) => ("amqps", tls::AMQPS_PORT),
        None => ("amqp", AMQP_PORT),
    };
    BTreeMap::from([
        ("port".into(), Some(port.to_string())),
        (
            URI_KEY.into(),
            Some(format!("{scheme}://{user}:{password}@{host}:{port}/%2f")),
        ),
        (BROKER_CA_KEY.into(), ca.map(str::to_owned)),
        (
            MANAGEMENT_URI_KEY.into(),
            Some(management_uri(host, user, password)),
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
    /// Whether the broker serves AMQPS (and no plain AMQP).
    fn tls(&self) -> bool {
        self.spec.tls.is_some()
    }

    /// The port clients connect to: AMQPS with TLS, else AMQP.
    fn client_port(&self) -> (&'static str, i32) {
        if self.tls() {
            ("amqps", tls::AMQPS_PORT)
        } else {
            ("amqp", AMQP_PORT)
        }
    }

    /// The Secret holding the TLS listener's certificate: the user's, else
    /// the generated one.
    fn tls_secret(&self) -> Option<String> {
        let spec = self.spec.tls.as_ref()?;
        Some(
            spec.secret_name
                .clone()
                .unwrap_or_else(|| self.names.tls.clone()),
        )
    }

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
        let data = credentials_data(&broker(), "s3cret", None);
        assert_eq!(
            data[URI_KEY],
            "amqp://eventflow:s3cret@rabbit.demo.svc:5672/%2f"
        );
        assert_eq!(data["port"], "5672");
        assert!(!data.contains_key(BROKER_CA_KEY));
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
    }

    #[test]
    fn a_tls_broker_is_reached_by_amqps_on_5671_and_verified_with_its_ca() {
        let data = credentials_data(&broker(), "s3cret", Some("PEM"));
        assert_eq!(
            data[URI_KEY],
            "amqps://eventflow:s3cret@rabbit.demo.svc:5671/%2f"
        );
        assert_eq!(data["port"], "5671");
        assert_eq!(data[BROKER_CA_KEY], "PEM");
        // Turning TLS off again: the same password, plain AMQP, the CA removed.
        let off = derived_credentials(&data, None);
        assert_eq!(
            off[URI_KEY].as_deref(),
            Some("amqp://eventflow:s3cret@rabbit.demo.svc:5672/%2f")
        );
        assert_eq!(off[BROKER_CA_KEY], None);
    }

    #[test]
    fn an_older_secret_gets_the_management_uri_from_its_own_password() {
        let mut old = credentials_data(&broker(), "kept", None);
        old.remove(MANAGEMENT_URI_KEY);
        assert_eq!(
            derived_credentials(&old, None)[MANAGEMENT_URI_KEY].as_deref(),
            Some("http://eventflow:kept@rabbit.demo.svc:15672")
        );
        old.remove("password");
        assert!(
            derived_credentials(&old, None).is_empty(),
            "nothing derived without a password"
        );
    }
}
