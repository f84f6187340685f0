//! How Streams reach an EventBroker, derived from the EventBroker's spec
//! alone: the Secret key holding the AMQP URI, the queue type its size calls
//! for, and the endpoint shown in status. Pure: [`crate::resolve`] reads the
//! Secret it names, [`crate::build`] wires it into every app container.

use eventflow_contract::QueueType;

use crate::{api::EventBroker, naming};

/// The AMQP port of a managed broker's client Service.
pub const AMQP_PORT: i32 = 5672;
/// [`BrokerWiring::mode`] of a broker the operator runs.
pub const MANAGED: &str = "managed";

/// Key of the AMQP URI in a credentials Secret (and the default for external ones).
pub const URI_KEY: &str = "uri";

/// Where the apps' broker URI is: a key of a Secret in the Stream's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerSecret {
    pub name: String,
    pub key: String,
}

/// How Streams reach a broker: the Secret with its URI and the queue type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerWiring {
    pub secret: BrokerSecret,
    pub queue_type: QueueType,
    /// `host:port` for status (no credentials).
    pub endpoint: Option<String>,
    pub mode: &'static str,
    /// A managed broker serving AMQPS only: Spring apps turn SSL on (ours
    /// follow the URI's scheme).
    pub tls: bool,
}

/// The wiring of any EventBroker, managed or external, from its spec alone.
pub fn broker_wiring(broker: &EventBroker) -> BrokerWiring {
    let name = broker.metadata.name.as_deref().unwrap_or_default();
    let namespace = broker.metadata.namespace.as_deref().unwrap_or_default();
    match (&broker.spec.managed, &broker.spec.external) {
        (Some(managed), _) => {
            let port = if managed.tls.is_some() {
                crate::build::broker::tls::AMQPS_PORT
            } else {
                AMQP_PORT
            };
            BrokerWiring {
                secret: BrokerSecret {
                    name: naming::broker(name).credentials,
                    key: URI_KEY.into(),
                },
                queue_type: if managed.replicas.unwrap_or(1) >= 3 {
                    QueueType::Quorum
                } else {
                    QueueType::Classic
                },
                endpoint: Some(format!("{name}.{namespace}.svc:{port}")),
                mode: MANAGED,
                tls: managed.tls.is_some(),
            }
        }
        (None, external) => {
            let secret = external.as_ref().map(|e| &e.connection_secret);
            BrokerWiring {
                secret: BrokerSecret {
                    name: secret.map(|s| s.name.clone()).unwrap_or_default(),
                    key: secret
                        .and_then(|s| s.key.clone())
                        .unwrap_or_else(|| URI_KEY.into()),
                },
                queue_type: QueueType::Classic,
                endpoint: None,
                mode: "external",
                tls: false,
            }
        }
    }
}
