//! Supervision of a process's tasks: the signal that begins a graceful
//! stop, the first fatal error that ends the process, and the servers
//! spawned so that either stops them.

use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

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
pub(super) struct Failure(Arc<Mutex<Option<anyhow::Error>>>);

impl Failure {
    pub(super) fn record(&self, e: anyhow::Error, cancel: &CancellationToken) {
        tracing::error!(error = %e, "stopping on error");
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
        cancel.cancel();
    }
    pub(super) fn take(&self) -> anyhow::Result<()> {
        match self.0.lock().ok().and_then(|mut s| s.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

pub(super) fn spawn_server(
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
