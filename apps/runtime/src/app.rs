//! Runs an app in the role the configuration names: wires the store, the
//! broker, the HTTP servers, the relay and the consumers together, and shuts
//! down gracefully on SIGTERM/SIGINT (stop accepting, drain consumers, let
//! the relay finish its batch). A lost broker connection ends the process
//! with an error so its supervisor (Kubernetes) restarts it cleanly.

use std::{sync::Arc, time::Duration};

use axum::{Router, response::IntoResponse, routing::get};
use eventflow_contract::Bindings;
use serde_json::Value;
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    admin::{self, Readiness},
    broker,
    config::{Config, Role, Standalone},
    consumer::Consumer,
    functions::{HalClient, Registry},
    metrics::Metrics,
    problem::normalize_errors,
    relay::Relay,
    store::EventStore,
    web::{self, WebContext},
};

/// Everything the runtime needs to know about an app.
pub struct AppSpec {
    /// `account`: default store file name, connection name.
    pub name: &'static str,
    pub standalone: Standalone,
    /// The destination its events are published to.
    pub publishes_to: &'static str,
    /// Its aggregates' routes (e.g. [`web::aggregate_routes`] merged).
    pub routes: fn() -> Router<WebContext>,
    pub openapi: fn() -> Value,
    /// Aggregate type -> collection path segment, for links.
    pub collection_of: fn(&str) -> &'static str,
    pub functions: fn() -> Registry,
}

/// The web role's router: the aggregates, the feed, the OpenAPI document,
/// problem+json for every error.
pub fn web_router(spec: &AppSpec, ctx: WebContext) -> Router {
    let openapi = (spec.openapi)();
    (spec.routes)()
        .merge(web::feed_routes(spec.collection_of))
        .route(
            "/openapi.json",
            get(move || async move { axum::Json(openapi.clone()).into_response() }),
        )
        .fallback(web::not_found)
        .layer(axum::middleware::map_response(normalize_errors))
        .with_state(ctx)
}

async fn shutdown_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = cancel.cancelled() => return,
    }
    tracing::info!("shutting down");
    cancel.cancel();
}

async fn serve(
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}

/// Runs `spec` as `config.role` until a signal (or a fatal error).
pub async fn run(spec: AppSpec, config: Config) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_signal(cancel.clone()));
    let metrics = Metrics::default();
    let role = config.role;
    let readiness = Readiness {
        needs_store: role.runs_web(),
        needs_broker: role != Role::Functions,
        ..Readiness::default()
    };
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let admin = TcpListener::bind(config.admin_addr).await?;
    tasks.spawn(serve(
        admin,
        admin::routes(readiness.clone(), metrics.clone()),
        cancel.clone(),
    ));
    tracing::info!(app = spec.name, role = role.as_str(), admin = %config.admin_addr, "starting");

    let http = if role == Role::Worker {
        None
    } else {
        Some(TcpListener::bind(config.http_addr).await?)
    };
    let store = if role.runs_web() {
        if let Some(dir) = config.sqlite_dir() {
            std::fs::create_dir_all(&dir)?;
        }
        let store = EventStore::connect(&config.database_url).await?;
        let _ = readiness.store.set(store.clone());
        Some(store)
    } else {
        None
    };
    let connection = if readiness.needs_broker {
        let c = Arc::new(
            broker::connect(
                &config.broker_uri,
                &format!("{}-{}", spec.name, role.as_str()),
                &cancel,
            )
            .await?,
        );
        broker::declare_topology(&c, &config.bindings, config.bindings_from_operator, &cancel)
            .await?;
        let _ = readiness.broker.set(c.clone());
        Some(c)
    } else {
        None
    };

    if let (Some(store), Some(connection), Some(listener)) = (
        &store,
        &connection,
        http.as_ref().filter(|_| role.runs_web()),
    ) {
        let _ = listener;
        let exchange = exchange_of(&config.bindings, spec.publishes_to)?;
        let notify = Arc::new(Notify::new());
        let relay = Relay {
            store: store.clone(),
            channel: connection.create_channel().await?,
            exchange,
            self_url: config.self_url.clone(),
            collection_of: spec.collection_of,
            notify: notify.clone(),
            metrics: metrics.clone(),
            fault_exit_after_commit: config.fault_exit_after_commit,
        };
        let relay_cancel = cancel.clone();
        tasks.spawn(async move { Ok(relay.run(relay_cancel).await?) });
        let ctx = WebContext {
            store: store.clone(),
            metrics: metrics.clone(),
            relay: notify,
        };
        let router = web_router(&spec, ctx);
        if let Some(listener) = http {
            tracing::info!(addr = %config.http_addr, "web API listening");
            tasks.spawn(serve(listener, router, cancel.clone()));
        }
    } else if role == Role::Functions
        && let Some(listener) = http
    {
        let router = (spec.functions)()
            .routes(HalClient::default())
            .fallback(web::not_found);
        tracing::info!(addr = %config.http_addr, "functions listening");
        tasks.spawn(serve(listener, router, cancel.clone()));
    }

    if role.runs_worker()
        && let Some(connection) = &connection
    {
        for subscription in &config.bindings.subscribes {
            let consumer = Consumer {
                subscription: subscription.clone(),
                handler: (spec.functions)().handler(HalClient::default()),
                prefetch: config.prefetch,
                concurrency: config.concurrency,
                metrics: metrics.clone(),
            };
            let (connection, cancel) = (connection.clone(), cancel.clone());
            tasks.spawn(async move { Ok(consumer.run(connection, cancel).await?) });
        }
    }
    if let Some(connection) = connection.clone() {
        let cancel = cancel.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if !connection.status().connected() {
                    cancel.cancel();
                    anyhow::bail!("lost the broker connection");
                }
            }
        });
    }
    let _ = readiness.started.set(());
    tracing::info!("ready");

    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = outcome {
            tracing::error!(error = %e, "a task failed; stopping");
            cancel.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    if let Some(connection) = connection {
        let _ = connection.close(200, "bye".into()).await;
    }
    tracing::info!("stopped");
    result
}

fn exchange_of(bindings: &Bindings, destination: &str) -> anyhow::Result<String> {
    bindings
        .exchange_for(destination)
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow::anyhow!("EVENTFLOW_BINDINGS does not publish to destination {destination:?}")
        })
}

/// JSON logs on stderr; `RUST_LOG` filters (default `info`).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
