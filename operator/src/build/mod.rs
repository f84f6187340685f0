//! Pure construction of the desired Kubernetes objects from the custom
//! resources: no I/O, so every rendering is unit-tested from YAML fixtures.
//! [`stream`] builds an app's Deployments and Services with the wiring
//! contract; [`broker`] builds a managed RabbitMQ. Build reads only its
//! inputs: a [`crate::validate::ValidStream`] and the broker's
//! [`crate::connection::BrokerWiring`].

pub mod broker;
pub mod network;
pub mod pod;
pub mod security;
pub mod spring;
pub mod stream;
pub mod wiring;

pub use broker::{BrokerObjects, build_broker};
pub use stream::{StreamObjects, build_stream};
