//! The defaults of a worker's wiring, in one place for both sides: the
//! operator writes them into a worker's environment and subscriptions when
//! a Stream leaves them unset, and an app run without an operator uses the
//! same values, so a worker behaves alike on a laptop and on a cluster.

/// Messages the broker may deliver to one worker replica before they are
/// acknowledged (`EVENTFLOW_PREFETCH`, AMQP `basic.qos`). A little above
/// [`CONCURRENCY`], so the next message is already at hand when one is
/// done, without one replica hoarding a queue its peers could drain.
pub const PREFETCH: u16 = 10;

/// Messages one worker replica handles at the same time
/// (`EVENTFLOW_CONCURRENCY`). The handlers mostly wait on other contexts'
/// web roles; more replicas, not more concurrency, is the way to scale.
pub const CONCURRENCY: u16 = 4;

/// Deliveries of a message before it is dead-lettered, when a
/// subscription does not set `maxAttempts`.
pub const MAX_ATTEMPTS: u32 = 5;

/// Delay before a failed message is delivered again, when a subscription
/// does not set `backoffMs`.
pub const BACKOFF_MS: u32 = 1_000;

/// Seconds a saga participant (an order, a payment, a reservation) may wait
/// for its next step before the web role re-drives the step
/// (`EVENTFLOW_STALL_AFTER`). Well above a healthy step (milliseconds) and
/// a saga step's whole retry budget (30 attempts, 500 ms apart), so only a
/// step whose message was lost or dead-lettered is re-driven.
pub const STALL_AFTER_SECS: u32 = 60;

/// Longest time, in seconds, a worker keeps one message in hand while a
/// dependency it needs (a peer's web role, that peer's store) is
/// unavailable, retrying it in process with a growing backoff and without
/// spending one of its `maxAttempts` (`EVENTFLOW_TRANSIENT_RETRY_SECONDS`).
/// Past it the unavailability counts as one ordinary failed attempt.
pub const TRANSIENT_RETRY_SECONDS: u32 = 600;

/// The largest [`TRANSIENT_RETRY_SECONDS`] a worker accepts: a message held
/// that long stays well inside RabbitMQ's consumer acknowledgement timeout
/// (`consumer_timeout`, 30 minutes by default), past which the broker closes
/// the channel of a consumer that holds an unacknowledged message.
pub const MAX_TRANSIENT_RETRY_SECONDS: u32 = 1_200;
