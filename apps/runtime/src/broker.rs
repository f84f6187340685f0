//! The broker connection: connecting (retrying until the broker answers or
//! the process is told to stop) and declaring the app's topology through the
//! contract crate — passively when the operator wrote `EVENTFLOW_BINDINGS`
//! (it owns the topology), for real when the app runs standalone.

use std::time::Duration;

use eventflow_contract::{Bindings, Topology, declare::declare};
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

/// Pause between attempts to reach the broker at start.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("stopped before the broker was reachable")]
    Cancelled,
}

/// Connects, retrying every second until `cancel`.
pub async fn connect(
    uri: &str,
    name: &str,
    cancel: &CancellationToken,
) -> Result<Connection, BrokerError> {
    loop {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        match Connection::connect(uri, props).await {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(error = %e, "broker not reachable yet"),
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(BrokerError::Cancelled),
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Declares (or, with `passive`, waits until the operator has declared) the
/// topology of `bindings`.
pub async fn declare_topology(
    connection: &Connection,
    bindings: &Bindings,
    passive: bool,
    cancel: &CancellationToken,
) -> Result<(), BrokerError> {
    let topology = Topology::of(bindings);
    loop {
        // A failed passive declare closes the channel: use a fresh one each time.
        let channel = connection.create_channel().await?;
        match declare(&channel, &topology, passive).await {
            Ok(()) => {
                let _ = channel.close(200, "declared".into()).await;
                return Ok(());
            }
            Err(e) if passive => {
                tracing::warn!(error = %e, "topology not declared by the operator yet")
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(BrokerError::Cancelled),
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}
