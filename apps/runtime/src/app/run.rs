//! Running one process in the role its configuration names: the admin
//! server, the store, web API and re-driver of stalled saga steps (web,
//! all), the functions server
//! (functions), then everything that needs the broker ([`super::messaging`]);
//! and the order of a graceful stop — consumers drain first, the web API
//! (which in role `all` they call) stops after them. The broker coming and
//! going never ends the process: the link reconnects in-process.

use std::sync::Arc;

use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    AppSpec,
    http::web_router,
    messaging::BrokerPart,
    supervise::{Failure, shutdown_signal, spawn_server},
};
use crate::{
    admin::{self, Readiness},
    broker::BrokerLink,
    config::{Config, Role},
    drain::{self, Drain},
    metrics::Metrics,
    redrive::{MAX_REDRIVES, Redriver},
    store::EventStore,
    web::{self, WebContext},
};

/// Runs `spec` as `config.role` until a signal (or a fatal error).
pub async fn run(spec: AppSpec, config: Config) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    // Stops the web API and the relay; after the consumers drained.
    let web_stop = CancellationToken::new();
    tokio::spawn(shutdown_signal(cancel.clone()));
    let failure = Failure::default();
    let metrics = Metrics::default();
    let role = config.role;
    // One broker connection per process (none for `functions`). A role
    // serving the web API stays ready without it: commits wait in the
    // outbox; a role that only consumes is ready only while connected.
    let link = (role != Role::Functions).then(BrokerLink::new);
    let readiness = Readiness {
        needs_store: role.runs_web(),
        needs_broker: role == Role::Worker,
        broker: link.clone(),
        ..Readiness::default()
    };
    let tasks = TaskTracker::new();
    let consumers = TaskTracker::new();
    let admin_stop = CancellationToken::new();
    // `POST /drain` (a suspended Stream) stops the consumers and the
    // re-driver, not the process.
    let consume_stop = cancel.child_token();
    let redrive_stop = web_stop.child_token();
    let drain = Drain::new(
        role,
        vec![consume_stop.clone(), redrive_stop.clone()],
        consumers.clone(),
        readiness.store.clone(),
        metrics.clone(),
    );
    let admin = TcpListener::bind(config.admin_addr).await?;
    spawn_server(
        &tasks,
        admin,
        admin::routes(readiness.clone(), metrics.clone()).merge(drain::routes(drain.clone())),
        admin_stop.clone(),
        &failure,
    );
    tracing::info!(app = spec.name, role = role.as_str(), admin = %config.admin_addr, "starting");
    let http = if role == Role::Worker {
        None
    } else {
        Some(TcpListener::bind(config.http_addr).await?)
    };

    let relay_notify = Arc::new(Notify::new());
    let store = if role.runs_web() {
        if let Some(dir) = config.sqlite_dir() {
            std::fs::create_dir_all(&dir)?;
        }
        let store = EventStore::connect(&config.database_url).await?;
        let _ = readiness.store.set(store.clone());
        let ctx = WebContext {
            store: store.clone(),
            metrics: metrics.clone(),
            relay: relay_notify.clone(),
        };
        if let Some(stall_after) = config.stall_after {
            let redriver = Redriver {
                store: store.clone(),
                metrics: metrics.clone(),
                relay: relay_notify.clone(),
                stall_after,
                max_redrives: MAX_REDRIVES,
            };
            tasks.spawn(redriver.run(redrive_stop));
        }
        if let Some(listener) = http {
            tracing::info!(addr = %config.http_addr, "web API listening");
            spawn_server(
                &tasks,
                listener,
                web_router(&spec, ctx).layer(axum::middleware::from_fn_with_state(
                    drain,
                    drain::refuse_commands,
                )),
                web_stop.clone(),
                &failure,
            );
        }
        Some(store)
    } else {
        if let Some(listener) = http {
            let router = (spec.functions)().routes().fallback(web::not_found);
            tracing::info!(addr = %config.http_addr, "functions listening");
            spawn_server(&tasks, listener, router, web_stop.clone(), &failure);
        }
        None
    };

    if let Some(link) = link.clone() {
        let part = BrokerPart {
            spec,
            config: config.clone(),
            store,
            relay_notify,
            metrics: metrics.clone(),
            link,
            consume_stop,
        };
        let (cancel, web_stop, consumers, failure) = (
            cancel.clone(),
            web_stop.clone(),
            consumers.clone(),
            failure.clone(),
        );
        tasks.spawn(async move {
            match part.run(&cancel, &web_stop, &consumers, &failure).await {
                Ok(()) => {}
                Err(e) => failure.record(e.into(), &cancel),
            }
            consumers.close();
        });
    } else {
        consumers.close();
    }
    let _ = readiness.started.set(());
    tracing::info!("started");

    cancel.cancelled().await;
    consumers.wait().await;
    web_stop.cancel();
    admin_stop.cancel();
    tasks.close();
    tasks.wait().await;
    if let Some(c) = link.and_then(|l| l.current()) {
        // Bounded like the consumers' channel close: never hang on the broker when stopping.
        let _ =
            tokio::time::timeout(crate::consumer::CLOSE_TIMEOUT, c.close(200, "bye".into())).await;
    }
    tracing::info!("stopped");
    failure.take()
}
