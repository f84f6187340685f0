//! The broker link: the one AMQP connection of a process, kept up for as
//! long as the process runs. It connects, checks the app's topology through
//! the contract crate — passively when the operator wrote
//! `EVENTFLOW_BINDINGS` (it owns the topology: wait until it is declared),
//! for real when the app runs standalone — and only then hands the
//! connection out. When the connection is lost it reconnects in-process
//! with capped, fully jittered exponential backoff ([`BACKOFF_FIRST`]
//! doubling up to [`BACKOFF_CAP`]) and checks the topology again, until the
//! process is told to stop. Consumers and the relay ask the link for the
//! current connection ([`BrokerLink::connection`]) and, when their channel
//! dies with it, simply ask again.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use eventflow_contract::{Bindings, Topology, declare::declare, tls};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The first pause after a failed attempt to reach the broker.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between attempts: a broker back after a long outage is
/// found again within this (plus one connection attempt).
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// How often the link looks whether its connection still lives (a status
/// read, no I/O), and how often a waiter looks again at a connection it was
/// handed before the link noticed the loss.
const LOSS_POLL: Duration = Duration::from_millis(100);
/// Pause between passive checks while the operator has not declared the
/// topology yet.
const TOPOLOGY_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("stopped before the broker was reachable")]
    Cancelled,
}

/// Capped exponential backoff with full jitter: the `n`th pause is drawn
/// uniformly from `[0, min(cap, first * 2^n)]`, so many processes that lost
/// the same broker do not all knock at the same instant when it comes back.
#[derive(Clone, Debug)]
pub struct Backoff {
    ceiling: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            ceiling: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The next pause; doubles the ceiling of the one after.
    pub fn next_pause(&mut self) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (ceiling * 2).min(BACKOFF_CAP);
        // Any uniformly random u64 will do; the v4 UUID's comes from the OS.
        let (random, _) = uuid::Uuid::new_v4().as_u64_pair();
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(random % (millis + 1))
    }

    /// Starts again from [`BACKOFF_FIRST`] (after a success).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Where the link connects and what it checks on every connection.
#[derive(Clone, Debug)]
pub struct Target {
    pub uri: String,
    /// The CA an `amqps` broker is verified with (PEM).
    pub ca: Option<String>,
    /// The connection name the broker shows (`<app>-<role>`).
    pub name: String,
    pub bindings: Bindings,
    /// The operator owns the topology: declare passively, waiting for it.
    pub passive: bool,
}

/// The process's broker connection, shared by its consumers, its relay and
/// `/readyz`. Cloning shares the same link.
#[derive(Clone)]
pub struct BrokerLink(Arc<watch::Sender<Option<Arc<Connection>>>>);

impl Default for BrokerLink {
    fn default() -> Self {
        Self::new()
    }
}

impl BrokerLink {
    /// A link with no connection yet; [`BrokerLink::maintain`] makes them.
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(None)))
    }

    /// A link on a connection made elsewhere (tests): nothing reconnects it.
    pub fn of(connection: Arc<Connection>) -> Self {
        Self(Arc::new(watch::Sender::new(Some(connection))))
    }

    /// The connection, if it is up (and its topology checked) right now.
    pub fn current(&self) -> Option<Arc<Connection>> {
        self.0
            .borrow()
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }

    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// Waits for a live connection; `None` once `cancel` is cancelled.
    pub async fn connection(&self, cancel: &CancellationToken) -> Option<Arc<Connection>> {
        let mut changes = self.0.subscribe();
        loop {
            if let Some(c) = self.current() {
                return Some(c);
            }
            changes.borrow_and_update();
            tokio::select! {
                () = cancel.cancelled() => return None,
                // The link holds the sender: `changed` never fails here.
                _ = changes.changed() => {}
                // A connection handed out before the link noticed its loss.
                () = tokio::time::sleep(LOSS_POLL) => {}
            }
        }
    }

    /// Keeps the connection up until `cancel`: connects, checks the
    /// topology, hands the connection out, and on its loss starts again.
    /// Returns `Ok` when cancelled (the last connection stays in the link,
    /// so a draining consumer can still settle its messages; the caller
    /// closes it), `Err` only when the broker refuses the topology the app
    /// declares for itself on a live connection (a configuration error).
    pub async fn maintain(
        &self,
        target: &Target,
        metrics: &Metrics,
        cancel: &CancellationToken,
    ) -> Result<(), BrokerError> {
        let mut backoff = Backoff::default();
        let mut lost_at: Option<Instant> = None;
        loop {
            let props =
                ConnectionProperties::default().with_connection_name(target.name.clone().into());
            let attempt = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                c = tls::connect(&target.uri, target.ca.as_deref(), props) => c,
            };
            let connection = match attempt {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "broker not reachable");
                    if !pause_or_cancel(pause, cancel).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            match declare_topology(&connection, &target.bindings, target.passive, cancel).await {
                Ok(()) => {}
                Err(BrokerError::Cancelled) => {
                    self.0.send_replace(Some(connection));
                    return Ok(());
                }
                Err(e) if !connection.status().connected() => {
                    let pause = backoff.next_pause();
                    tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "broker lost while checking the topology");
                    if !pause_or_cancel(pause, cancel).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            backoff.reset();
            metrics.broker_connected.set(1);
            match lost_at.take() {
                Some(at) => {
                    metrics.broker_reconnects.inc();
                    tracing::info!(
                        downtime_ms = at.elapsed().as_millis() as u64,
                        "broker connection re-established"
                    );
                }
                None => tracing::info!("broker connected"),
            }
            self.0.send_replace(Some(connection.clone()));
            if !lost(&connection, cancel).await {
                return Ok(());
            }
            self.0.send_replace(None);
            metrics.broker_connected.set(0);
            lost_at = Some(Instant::now());
            tracing::warn!("lost the broker connection; reconnecting");
        }
    }
}

/// Sleeps `pause`; false when `cancel` came first.
async fn pause_or_cancel(pause: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(pause) => true,
    }
}

/// Waits until `connection` is lost (true) or `cancel` (false).
async fn lost(connection: &Connection, cancel: &CancellationToken) -> bool {
    loop {
        if !connection.status().connected() {
            return true;
        }
        if !pause_or_cancel(LOSS_POLL, cancel).await {
            return false;
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
            Err(e) if passive && connection.status().connected() => {
                tracing::warn!(error = %e, "topology not declared by the operator yet")
            }
            Err(e) => return Err(e.into()),
        }
        if !pause_or_cancel(TOPOLOGY_RETRY, cancel).await {
            return Err(BrokerError::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_jittered_below_a_ceiling_that_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let mut ceiling = BACKOFF_FIRST;
        for _ in 0..12 {
            assert!(b.next_pause() <= ceiling);
            ceiling = (ceiling * 2).min(BACKOFF_CAP);
        }
        assert_eq!(b.ceiling, BACKOFF_CAP);
        let pauses: Vec<_> = (0..64).map(|_| b.next_pause()).collect();
        assert!(pauses.iter().all(|p| *p <= BACKOFF_CAP));
        assert!(
            pauses.iter().any(|p| *p != pauses[0]),
            "jittered: {pauses:?}"
        );
        b.reset();
        assert!(b.next_pause() <= BACKOFF_FIRST);
    }

    #[tokio::test]
    async fn waiting_for_a_connection_ends_when_cancelled() {
        let link = BrokerLink::new();
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(link.connection(&cancel).await.is_none());
        assert!(!link.is_connected());
    }
}
