//! Starting the operator: configuration from the environment, the admin
//! server, the leader election loop and — only while leading — the
//! controllers. Used by `main.rs` and, in-process, by the tests.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use kube::Client;
use tokio::sync::watch;

use crate::{
    admin::{self, AdminState},
    context::{Context, Settings},
    controller,
    leader::{LeaseConfig, LeaseLock},
    metrics::Metrics,
};

#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace (`None`: every namespace).
    pub namespace: Option<String>,
    pub lease: LeaseConfig,
    pub admin_addr: SocketAddr,
    pub settings: Settings,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn secs(name: &str, default: Duration) -> anyhow::Result<Duration> {
    match var(name) {
        None => Ok(default),
        Some(v) => {
            Ok(Duration::from_secs_f64(v.parse().with_context(|| {
                format!("{name}={v} is not a number of seconds")
            })?))
        }
    }
}

impl Config {
    /// Reads `EVENTFLOW_OPERATOR_*` variables (see operator/README.md).
    pub fn from_env() -> anyhow::Result<Self> {
        let identity = var("EVENTFLOW_OPERATOR_ID")
            .or_else(|| var("POD_NAME"))
            .unwrap_or_else(|| {
                let host = var("HOSTNAME").unwrap_or_else(|| "eventflow-operator".into());
                format!("{host}-{}", std::process::id())
            });
        let lease_ns = var("EVENTFLOW_OPERATOR_LEASE_NAMESPACE")
            .or_else(|| var("POD_NAMESPACE"))
            .unwrap_or_else(|| "eventflow-system".into());
        let lease_name =
            var("EVENTFLOW_OPERATOR_LEASE_NAME").unwrap_or_else(|| "eventflow-operator".into());
        let mut lease = LeaseConfig::new(&lease_ns, &lease_name, &identity);
        lease.duration = secs("EVENTFLOW_OPERATOR_LEASE_SECS", lease.duration)?;
        lease.renew = lease.duration / 5;
        let defaults = Settings::default();
        let settings = Settings {
            resync: secs("EVENTFLOW_OPERATOR_RESYNC_SECS", defaults.resync)?,
            broker_check: secs(
                "EVENTFLOW_OPERATOR_BROKER_CHECK_SECS",
                defaults.broker_check,
            )?,
            cleanup_give_up: secs(
                "EVENTFLOW_OPERATOR_CLEANUP_GIVE_UP_SECS",
                defaults.cleanup_give_up,
            )?,
            reconcile_timeout: secs(
                "EVENTFLOW_OPERATOR_RECONCILE_TIMEOUT_SECS",
                defaults.reconcile_timeout,
            )?,
            concurrency: match var("EVENTFLOW_OPERATOR_CONCURRENCY") {
                None => defaults.concurrency,
                Some(v) => v.parse().with_context(|| {
                    format!("EVENTFLOW_OPERATOR_CONCURRENCY={v} is not a number")
                })?,
            },
            autoscale_interval: secs(
                "EVENTFLOW_OPERATOR_AUTOSCALE_SECS",
                defaults.autoscale_interval,
            )?,
            redrive_batch: match var("EVENTFLOW_OPERATOR_REDRIVE_BATCH") {
                None => defaults.redrive_batch,
                Some(v) => v.parse().ok().filter(|n| *n > 0).with_context(|| {
                    format!("EVENTFLOW_OPERATOR_REDRIVE_BATCH={v} is not a positive number")
                })?,
            },
            // The pods of the operator's namespace (it, the dashboard) may reach Streams' pods.
            operator_namespace: var("POD_NAMESPACE"),
            ..defaults
        };
        let admin_addr =
            var("EVENTFLOW_OPERATOR_ADMIN_ADDR").unwrap_or_else(|| "0.0.0.0:9090".into());
        Ok(Self {
            namespace: var("EVENTFLOW_OPERATOR_NAMESPACE"),
            lease,
            admin_addr: admin_addr
                .parse()
                .with_context(|| format!("EVENTFLOW_OPERATOR_ADMIN_ADDR={admin_addr}"))?,
            settings,
        })
    }
}

/// Runs until `shutdown` completes (graceful: the controllers finish, the
/// Lease is released) or the Lease is lost (an error: the process must stop
/// writing, and its supervisor restarts it).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let leading = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn({
        let stop_tx = stop_tx.clone();
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }
    });

    let listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("binding {}", config.admin_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "admin endpoints listening");
    let state = AdminState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        leading: leading.clone(),
    };
    let admin = tokio::spawn(
        axum::serve(listener, admin::router(state))
            .with_graceful_shutdown(stopped())
            .into_future(),
    );

    let lock = LeaseLock::new(client.clone(), config.lease.clone());
    let result = elect_and_lead(&lock, client, &config, metrics, &ready, &leading, stopped).await;
    let _ = stop_tx.send(true);
    let _ = admin.await;
    result
}

async fn elect_and_lead<S, F>(
    lock: &LeaseLock,
    client: Client,
    config: &Config,
    metrics: Metrics,
    ready: &AtomicBool,
    leading: &AtomicBool,
    stopped: S,
) -> anyhow::Result<()>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    let renew = config.lease.renew;
    // Stand by until we hold the Lease.
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election: cannot read or write the Lease"),
        }
        ready.store(true, Ordering::Relaxed);
        tokio::select! {
            _ = stopped() => return Ok(()),
            _ = tokio::time::sleep(renew) => {}
        }
    }
    tracing::info!(
        identity = lock.identity(),
        "acquired the leader Lease; starting controllers"
    );
    ready.store(true, Ordering::Relaxed);
    leading.store(true, Ordering::Relaxed);
    metrics.set_leader(true);

    let (lead_tx, lead_rx) = watch::channel(false);
    let ctx = Arc::new(Context::new(
        client,
        lock.identity(),
        metrics.clone(),
        config.settings.clone(),
    ));
    let mut controllers = tokio::spawn(controller::run(ctx, config.namespace.clone(), lead_rx));

    // Stop writing well before another instance may take over.
    let deadline = config.lease.duration * 2 / 3;
    let mut renewed = Instant::now();
    let outcome = loop {
        tokio::select! {
            _ = stopped() => break Ok(()),
            _ = &mut controllers => break Err(anyhow::anyhow!("the controllers stopped unexpectedly")),
            _ = tokio::time::sleep(renew) => match lock.try_acquire_or_renew().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => break Err(anyhow::anyhow!("lost the leader Lease to another instance")),
                Err(e) if renewed.elapsed() > deadline => break Err(anyhow::anyhow!("could not renew the leader Lease: {e}")),
                Err(e) => tracing::warn!(error = %e, "renewing the leader Lease failed; retrying"),
            },
        }
    };
    let _ = lead_tx.send(true);
    if !controllers.is_finished() {
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut controllers).await;
    }
    leading.store(false, Ordering::Relaxed);
    metrics.set_leader(false);
    if outcome.is_ok() {
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "could not release the leader Lease");
        }
        tracing::info!("released the leader Lease; stopped");
    }
    outcome
}
