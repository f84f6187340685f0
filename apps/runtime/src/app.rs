//! Runs an app in the role the configuration names: wires the store, the
//! broker, the HTTP servers, the relay and the consumers together.
//!
//! The web API serves as soon as the store is up — commands commit into the
//! outbox even while the broker is unreachable (`/readyz` says so) and the
//! relay catches up once it connects. On SIGTERM/SIGINT the consumers drain
//! first and the web API (which in role `all` they call) stops after them.
//! A lost broker connection ends the process with an error so its
//! supervisor (Kubernetes) restarts it cleanly.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, response::IntoResponse, routing::get};
use eventflow_contract::Bindings;
use lapin::Connection;
use serde_json::Value;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    admin::{self, Readiness},
    broker::{self, BrokerError},
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
        // After routing, so the route template is known.
        .route_layer(axum::middleware::from_fn_with_state(
            ctx.metrics.clone(),
            observe_request,
        ))
        .fallback(
            |axum::extract::State(ctx): axum::extract::State<WebContext>| async move {
                let unmatched = crate::metrics::HttpRequest {
                    route: "unmatched".into(),
                    status: "4xx",
                };
                ctx.metrics.http_requests.get_or_create(&unmatched).inc();
                web::not_found().await
            },
        )
        .layer(axum::middleware::map_response(normalize_errors))
        .with_state(ctx)
}

/// Counts every request by route template and status class, and logs it
/// (server errors at `error`, the rest at `debug`).
async fn observe_request(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unknown".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let class = match status.as_u16() {
        500.. => "5xx",
        400..=499 => "4xx",
        300..=399 => "3xx",
        _ => "2xx",
    };
    let millis = start.elapsed().as_secs_f64() * 1e3;
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), millis, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), millis, "request");
    }
    metrics
        .http_requests
        .get_or_create(&crate::metrics::HttpRequest {
            route,
            status: class,
        })
        .inc();
    response
}

/// Cancels `cancel` on SIGTERM or SIGINT (returns without cancelling when
/// `cancel` is cancelled first): every app's way to begin a graceful stop.
pub async fn shutdown_signal(cancel: CancellationToken) {
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

/// The first fatal error of any task; the process exits with it.
#[derive(Clone, Default)]
struct Failure(Arc<Mutex<Option<anyhow::Error>>>);

impl Failure {
    fn record(&self, e: anyhow::Error, cancel: &CancellationToken) {
        tracing::error!(error = %e, "stopping on error");
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        cancel.cancel();
    }
    fn take(&self) -> anyhow::Result<()> {
        match self.0.lock().ok().and_then(|mut s| s.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn spawn_server(
    tasks: &TaskTracker,
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    failure: &Failure,
) {
    let failure = failure.clone();
    tasks.spawn(async move {
        let serving = axum::serve(listener, router).with_graceful_shutdown({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        if let Err(e) = serving.await {
            failure.record(e.into(), &stop);
        }
    });
}

/// Runs `spec` as `config.role` until a signal (or a fatal error).
pub async fn run(spec: AppSpec, config: Config) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    // Stops the web API and the relay; after the consumers drained.
    let web_stop = CancellationToken::new();
    tokio::spawn(shutdown_signal(cancel.clone()));
    let failure = Failure::default();
    let metrics = Metrics::default();
    let role = config.role;
    let readiness = Readiness {
        needs_store: role.runs_web(),
        needs_broker: role != Role::Functions,
        ..Readiness::default()
    };
    let tasks = TaskTracker::new();
    let consumers = TaskTracker::new();
    let admin_stop = CancellationToken::new();
    let admin = TcpListener::bind(config.admin_addr).await?;
    spawn_server(
        &tasks,
        admin,
        admin::routes(readiness.clone(), metrics.clone()),
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
        if let Some(listener) = http {
            tracing::info!(addr = %config.http_addr, "web API listening");
            spawn_server(
                &tasks,
                listener,
                web_router(&spec, ctx),
                web_stop.clone(),
                &failure,
            );
        }
        Some(store)
    } else {
        if let Some(listener) = http {
            let router = (spec.functions)()
                .routes(HalClient::default())
                .fallback(web::not_found);
            tracing::info!(addr = %config.http_addr, "functions listening");
            spawn_server(&tasks, listener, router, web_stop.clone(), &failure);
        }
        None
    };

    if readiness.needs_broker {
        let part = BrokerPart {
            spec_name: spec.name,
            functions: spec.functions,
            collection_of: spec.collection_of,
            publishes_to: spec.publishes_to,
            config: config.clone(),
            store,
            relay_notify,
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        };
        let (cancel, web_stop, consumers, failure) = (
            cancel.clone(),
            web_stop.clone(),
            consumers.clone(),
            failure.clone(),
        );
        tasks.spawn(async move {
            match part.run(&cancel, &web_stop, &consumers, &failure).await {
                Ok(()) | Err(BrokerRunError::Broker(BrokerError::Cancelled)) => {}
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
    if let Some(c) = readiness.broker.get() {
        let _ = c.close(200, "bye".into()).await;
    }
    tracing::info!("stopped");
    failure.take()
}

#[derive(Debug, thiserror::Error)]
enum BrokerRunError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("EVENTFLOW_BINDINGS does not publish to destination {0:?}")]
    NoExchange(String),
    #[error("lost the broker connection")]
    Lost,
    #[error("the outbox relay stopped")]
    RelayStopped,
}

/// Everything that needs the broker: the relay (web), the consumers (worker).
struct BrokerPart {
    spec_name: &'static str,
    functions: fn() -> Registry,
    collection_of: fn(&str) -> &'static str,
    publishes_to: &'static str,
    config: Config,
    store: Option<EventStore>,
    relay_notify: Arc<Notify>,
    metrics: Metrics,
    readiness: Readiness,
}

impl BrokerPart {
    async fn run(
        self,
        cancel: &CancellationToken,
        web_stop: &CancellationToken,
        consumers: &TaskTracker,
        failure: &Failure,
    ) -> Result<(), BrokerRunError> {
        let c = &self.config;
        let name = format!("{}-{}", self.spec_name, c.role.as_str());
        let connection = Arc::new(broker::connect(&c.broker_uri, &name, cancel).await?);
        broker::declare_topology(&connection, &c.bindings, c.bindings_from_operator, cancel)
            .await?;
        let _ = self.readiness.broker.set(connection.clone());
        if c.role.runs_worker() {
            for subscription in &c.bindings.subscribes {
                let consumer = Consumer {
                    subscription: subscription.clone(),
                    handler: (self.functions)().handler(HalClient::default()),
                    prefetch: c.prefetch,
                    concurrency: c.concurrency,
                    metrics: self.metrics.clone(),
                };
                let (connection, cancel) = (connection.clone(), cancel.clone());
                let failure = failure.clone();
                consumers.spawn(async move {
                    if let Err(e) = consumer.run(connection, cancel.clone()).await {
                        failure.record(e.into(), &cancel);
                    }
                });
            }
        }
        consumers.close();
        let relay = match &self.store {
            Some(store) => {
                let exchange = exchange_of(&c.bindings, self.publishes_to)?;
                let relay = Relay {
                    store: store.clone(),
                    channel: connection.create_channel().await?,
                    exchange,
                    self_url: c.self_url.clone(),
                    collection_of: self.collection_of,
                    notify: self.relay_notify.clone(),
                    metrics: self.metrics.clone(),
                    fault_exit_after_commit: c.fault_exit_after_commit,
                };
                let stop = web_stop.clone();
                Some(tokio::spawn(async move { relay.run(stop).await }))
            }
            None => None,
        };
        let lost = watch_connection(&connection, cancel, relay).await;
        match lost {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// Watches the connection and the relay until `cancel`; returns why they
/// stopped first, if they did.
async fn watch_connection(
    connection: &Connection,
    cancel: &CancellationToken,
    mut relay: Option<tokio::task::JoinHandle<lapin::Result<()>>>,
) -> Option<BrokerRunError> {
    let failed = loop {
        tokio::select! {
            () = cancel.cancelled() => break None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if !connection.status().connected() {
            break Some(BrokerRunError::Lost);
        }
        if relay.as_ref().is_some_and(|r| r.is_finished()) && !cancel.is_cancelled() {
            let outcome = match relay.take() {
                Some(r) => r.await,
                None => Ok(Ok(())),
            };
            break Some(match outcome {
                Ok(Err(e)) => BrokerRunError::Amqp(e),
                _ => BrokerRunError::RelayStopped,
            });
        }
    };
    if failed.is_some() {
        cancel.cancel();
    }
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    failed
}

fn exchange_of(bindings: &Bindings, destination: &str) -> Result<String, BrokerRunError> {
    bindings
        .exchange_for(destination)
        .map(str::to_owned)
        .ok_or_else(|| BrokerRunError::NoExchange(destination.to_owned()))
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

/// The whole `main` of an app binary: JSON logs, configuration from the
/// environment (`role` is the command-line role, which wins over
/// `EVENTFLOW_ROLE`), then [`run`] until shutdown. Exit code 2 for a bad
/// configuration, 1 for a failure.
pub fn main(app: &str, spec: AppSpec, role: Option<&str>) -> std::process::ExitCode {
    let standalone = spec.standalone.clone();
    main_with(app, role, &standalone, |config| run(spec, config))
}

/// [`main`] for an app that runs its own processes instead of [`run`]
/// (the counter, the load simulator).
pub fn main_with<F, Fut>(
    app: &str,
    role: Option<&str>,
    standalone: &Standalone,
    run: F,
) -> std::process::ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    init_logs();
    let config = match Config::from_env(app, role, standalone) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "stopped on error");
            std::process::ExitCode::FAILURE
        }
    }
}
