//! Runs an app in the role the configuration names: wires the store, the
//! broker, the HTTP servers, the relay and the consumers together.
//!
//! The web API serves as soon as the store is up — commands commit into the
//! outbox even while the broker is unreachable (`/readyz` says so) and the
//! relay catches up once it connects. On SIGTERM/SIGINT the consumers drain
//! first and the web API (which in role `all` they call) stops after them.
//! A lost broker connection ends the process with an error so its
//! supervisor (Kubernetes) restarts it cleanly.
//!
//! In the order a process runs them: [`entry`] (`main`: logs, configuration)
//! calls [`run`](run::run), which starts the [`http`] router and
//! [`messaging`] (broker, consumers, relay) under [`supervise`]; [`spec`] is
//! what the app hands in. Nothing outside `app` imports these modules but
//! through the re-exports below; `app` may import every other module of the
//! runtime (it is the top of the crate).

mod entry;
mod http;
mod messaging;
mod run;
mod spec;
mod supervise;

pub use self::{
    entry::{init_logs, main, main_with},
    http::web_router,
    run::run,
    spec::{AppSpec, Retry, RoutingKeys, Worker},
    supervise::shutdown_signal,
};
