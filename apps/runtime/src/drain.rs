//! Draining a running process for a suspended Stream (`POST /drain` on the
//! admin port), without ending it: the operator drains every pod, then
//! scales its Deployment to zero.
//!
//! - Worker (`worker`, `all`): the consumers stop taking deliveries and
//!   finish what they hold — the same path as a graceful stop
//!   ([`crate::consumer::Consumer::run`] on cancel): `basic.cancel`, every
//!   message in hand handled and settled, a message waiting in process on an
//!   unavailable dependency requeued unspent, then the channel closed (which
//!   returns prefetched messages no handler started to the queue, untouched).
//!   Drained once every consumer has ended.
//! - Web (`web`, `all`): commands (every request but `GET`, `HEAD` and
//!   `OPTIONS`) are refused with 503 problem+json (and `Retry-After`); reads
//!   keep working; the re-driver of stalled saga steps stops (it would
//!   put events back in the outbox); the relay keeps publishing. Drained
//!   once no command is in progress and the outbox is empty.
//!
//! `POST /drain` starts it (again: a no-op) and answers like `GET /drain`:
//! `{role, draining, drained, holding, outbox, detail}` — `holding` the
//! messages (worker) and commands (web) in hand, `outbox` the events not
//! yet relayed, `detail` what is left in words. There is no undrain: a
//! resumed Stream gets new pods.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicI64, Ordering},
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{config::Role, metrics::Metrics, problem::Problem, store::EventStore};

/// The drain of one process; cheap to clone.
#[derive(Clone)]
pub struct Drain(Arc<Inner>);

struct Inner {
    role: Role,
    /// Cancelled when the drain starts.
    started: CancellationToken,
    /// Cancelled with `started`: the consumers, the re-driver.
    stops: Vec<CancellationToken>,
    /// The consumer tasks (closed once they are all spawned).
    consumers: TaskTracker,
    store: Arc<OnceLock<EventStore>>,
    metrics: Metrics,
    commands: AtomicI64,
}

/// What `GET /drain` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DrainState {
    pub role: String,
    pub draining: bool,
    pub drained: bool,
    /// Messages (worker) and commands (web) in hand.
    pub holding: i64,
    /// Events committed and not yet relayed; `None` when the store cannot say.
    pub outbox: Option<i64>,
    /// What is left, in words (`drained` when nothing is).
    pub detail: String,
}

impl Drain {
    /// The drain of a process of `role`: starting it cancels each of `stops`.
    pub fn new(
        role: Role,
        stops: Vec<CancellationToken>,
        consumers: TaskTracker,
        store: Arc<OnceLock<EventStore>>,
        metrics: Metrics,
    ) -> Self {
        Self(Arc::new(Inner {
            role,
            started: CancellationToken::new(),
            stops,
            consumers,
            store,
            metrics,
            commands: AtomicI64::new(0),
        }))
    }

    /// Starts draining (idempotent).
    pub fn start(&self) {
        if !self.0.started.is_cancelled() {
            tracing::info!(
                role = self.0.role.as_str(),
                "draining: the Stream is suspended"
            );
        }
        self.0.started.cancel();
        for stop in &self.0.stops {
            stop.cancel();
        }
    }

    pub fn is_draining(&self) -> bool {
        self.0.started.is_cancelled()
    }

    /// Where the drain stands.
    pub async fn state(&self) -> DrainState {
        let i = &self.0;
        let draining = self.is_draining();
        let mut left = Vec::new();
        let mut holding = 0;
        if i.role.runs_worker() {
            let messages = i.metrics.messages_in_hand.get();
            holding += messages;
            if messages > 0 {
                left.push(format!("{messages} message(s) in hand"));
            }
            if !(i.consumers.is_closed() && i.consumers.is_empty()) {
                left.push("consumers still running".into());
            }
        }
        let mut outbox = Some(0);
        if i.role.runs_web() {
            let commands = i.commands.load(Ordering::SeqCst);
            holding += commands;
            if commands > 0 {
                left.push(format!("{commands} command(s) in progress"));
            }
            outbox = match i.store.get() {
                None => None,
                Some(store) => store.outbox_pending().await.ok(),
            };
            match outbox {
                Some(0) => {}
                Some(n) => left.push(format!("{n} event(s) in the outbox, not yet relayed")),
                None => left.push("the event store cannot count the outbox".into()),
            }
        }
        let drained = draining && left.is_empty();
        let detail = if !draining {
            "not draining".to_owned()
        } else if drained {
            "drained".to_owned()
        } else {
            left.join("; ")
        };
        DrainState {
            role: i.role.as_str().to_owned(),
            draining,
            drained,
            holding,
            outbox,
            detail,
        }
    }
}

/// `GET /drain` (the state) and `POST /drain` (start, then the state).
pub fn routes(drain: Drain) -> Router {
    Router::new()
        .route(
            "/drain",
            get(|State(d): State<Drain>| async move { Json(d.state().await) }).post(
                |State(d): State<Drain>| async move {
                    d.start();
                    Json(d.state().await)
                },
            ),
        )
        .with_state(drain)
}

/// Middleware of the web API: while draining, refuses commands with 503;
/// counts the commands in progress.
pub async fn refuse_commands(State(drain): State<Drain>, request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    if drain.is_draining() {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "the Stream is suspended: commands are refused until it is resumed",
        )
        .into_response();
    }
    let commands = &drain.0.commands;
    commands.fetch_add(1, Ordering::SeqCst);
    let response = next.run(request).await;
    commands.fetch_sub(1, Ordering::SeqCst);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(role: Role) -> (Drain, CancellationToken, TaskTracker) {
        let stop = CancellationToken::new();
        let consumers = TaskTracker::new();
        let d = Drain::new(
            role,
            vec![stop.clone()],
            consumers.clone(),
            Arc::default(),
            Metrics::default(),
        );
        (d, stop, consumers)
    }

    #[tokio::test]
    async fn a_worker_is_drained_once_its_consumers_ended_and_hold_nothing() {
        let (d, stop, consumers) = drain(Role::Worker);
        let running = consumers.spawn({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        consumers.close();
        let s = d.state().await;
        assert!(!s.draining && !s.drained);
        d.start();
        d.start();
        assert!(stop.is_cancelled(), "the consumers are told to stop");
        running.await.unwrap();
        let s = d.state().await;
        assert!(s.draining && s.drained, "{s:?}");
        assert_eq!((s.holding, s.outbox), (0, Some(0)));
    }

    #[tokio::test]
    async fn a_message_in_hand_keeps_a_worker_draining_and_is_named() {
        let (d, _stop, consumers) = drain(Role::Worker);
        consumers.close();
        d.0.metrics.messages_in_hand.inc();
        d.start();
        let s = d.state().await;
        assert!(!s.drained);
        assert_eq!(s.holding, 1);
        assert_eq!(s.detail, "1 message(s) in hand");
    }

    #[tokio::test]
    async fn a_web_role_without_its_store_cannot_say_it_is_drained() {
        let (d, _stop, _) = drain(Role::Web);
        d.start();
        let s = d.state().await;
        assert!(!s.drained);
        assert_eq!(s.outbox, None);
    }
}
