//! Runs the load simulator's web role (and the admin endpoints) until
//! SIGTERM/SIGINT; running runs are stopped on the way out.

use eventflow_runtime::{
    admin::{self, Readiness},
    app,
    config::{Config, Role},
    metrics::Metrics,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Simulator, router, simulate::Targets};

#[derive(Debug, thiserror::Error)]
#[error("the load simulator has only a web role (web or all), not {0}")]
pub struct RoleError(&'static str);

pub async fn run(config: Config) -> anyhow::Result<()> {
    if matches!(config.role, Role::Worker | Role::Functions) {
        return Err(RoleError(config.role.as_str()).into());
    }
    let cancel = CancellationToken::new();
    tokio::spawn(app::shutdown_signal(cancel.clone()));
    let readiness = Readiness::default();
    let admin = TcpListener::bind(config.admin_addr).await?;
    let admin_cancel = cancel.clone();
    let admin_app = admin::routes(readiness.clone(), Metrics::default());
    let admin_task = tokio::spawn(async move {
        axum::serve(admin, admin_app)
            .with_graceful_shutdown(async move { admin_cancel.cancelled().await })
            .await
    });
    let targets = Targets::from_env();
    tracing::info!(order = ?targets.order, warehouse = ?targets.warehouse, account = ?targets.account, "targets");
    let sim = Simulator::new(targets);
    let http = TcpListener::bind(config.http_addr).await?;
    let _ = readiness.started.set(());
    tracing::info!(addr = %config.http_addr, "load simulator listening");
    let stop = cancel.clone();
    axum::serve(http, router(sim.clone()))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    sim.stop_all();
    admin_task.await??;
    Ok(())
}
