//! The runtime every eventflow reference app shares. An app describes its
//! aggregates ([`aggregate::Aggregate`]) and its action-mapped functions
//! ([`functions::Registry`]) and hands them to [`app::run`]; the runtime
//! provides the event store with optimistic concurrency and the outbox
//! ([`store`]), the relay ([`relay`]), the re-driver of stalled saga steps
//! ([`redrive`]), the consumer with retries and
//! dead-lettering ([`consumer`]), the HAL/problem+json HTTP API ([`web`]),
//! CloudEvents ([`cloudevent`]), the OpenAPI document ([`openapi`]), probes
//! and metrics ([`admin`], [`metrics`]) and the wiring contract ([`config`]).
//! See `apps/runtime/README.md` for a walk-through.

pub mod acks;
pub mod admin;
pub mod aggregate;
pub mod app;
pub mod broker;
pub mod cloudevent;
pub mod command;
pub mod config;
pub mod consumer;
pub mod drain;
pub mod event;
pub mod functions;
pub mod hal;
pub mod hypermedia;
pub mod inbound;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod redrive;
pub mod relay;
pub mod store;
pub mod web;

pub use aggregate::{Aggregate, Creation, DomainError};
pub use event::{NewEvent, RecordedEvent};
#[cfg(feature = "testing")]
pub mod testing;
