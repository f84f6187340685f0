//! The eventflow operator: reconciles `Stream` and `EventBroker` resources
//! into Deployments, Services, a RabbitMQ broker and its topology.
//!
//! Reconcile is a pipeline, one module per step: [`resolve`] -> [`validate`]
//! (pure) -> [`build`] (pure) -> [`apply`] -> [`topology`] -> [`status`].

pub mod api;
pub mod crd;
pub mod build;
pub mod naming;
pub mod validate;
