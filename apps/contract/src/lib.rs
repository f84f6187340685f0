//! The contract between the eventflow operator and the apps it deploys.
//!
//! Both sides depend on this crate so nothing here is ever written twice:
//! the environment variable names of the wiring contract ([`env`]) and the
//! defaults of a worker's wiring ([`defaults`]), the
//! deterministic names of broker objects ([`names`]), the `EVENTFLOW_BINDINGS`
//! JSON document ([`bindings`]) and the broker topology derived from it
//! ([`topology`]), which the operator declares and a standalone app declares
//! for itself (feature `amqp`), the broker permissions an app needs
//! ([`permissions`]), and AMQP topic matching ([`topic`]).

pub mod bindings;
pub mod defaults;
pub mod env;
pub mod names;
pub mod permissions;
pub mod topic;
pub mod topology;

#[cfg(feature = "amqp")]
pub mod declare;
#[cfg(feature = "amqp")]
pub mod tls;

pub use bindings::{Bindings, Publication, QueueType, Redelivery, Subscription};
pub use topology::Topology;
