//! `eventflow-dashboard`: serves the dashboard on `PORT` (default 8080),
//! watching `WATCH_NAMESPACE` (empty: every namespace) with the pod's own
//! ServiceAccount.

use std::net::SocketAddr;

use anyhow::Context as _;
use tracing_subscriber::{EnvFilter, fmt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .with_context(|| format!("PORT={p} is not a port"))?,
        Err(_) => 8080,
    };
    let namespace = std::env::var("WATCH_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty());
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration (in-cluster or KUBECONFIG)")?;
    let cache = eventflow_dashboard::cache::Cache::start(&client, namespace.as_deref());
    let app = eventflow_dashboard::http::router(
        cache,
        eventflow_dashboard::proxy::Upstream::new(eventflow_dashboard::apps::service_url()),
    );
    let address = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(%address, namespace = namespace.as_deref().unwrap_or("(all)"), "dashboard serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
