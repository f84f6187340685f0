//! Runs an app in the role the configuration names: wires the store, the
//! broker, the HTTP servers, the relay and the consumers together.
//!
//! The web API serves as soon as the store is up — commands commit into the
//! outbox even while the broker is unreachable (`/readyz` reports it and
//! stays ready) and the relay catches up once it connects. On SIGTERM/SIGINT
//! the consumers drain first and the web API (which in role `all` they call)
//! stops after them. A lost broker connection does not end the process: the
//! broker link reconnects in-process and the consumers and the relay resume
//! on its next connection; only fatal errors (configuration, the store's
//! migrations, a topology the broker refuses) end it.
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
