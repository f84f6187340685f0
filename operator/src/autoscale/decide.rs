//! The decision of one autoscaled worker role, pure: from its policy, the
//! recommendations of the last minutes and one reading of the broker.
//!
//! 1. The **recommendation** is what the backlog alone asks for: the
//!    messages ready + unacknowledged over `backlogPerReplica`, and/or the
//!    replicas that drain them within `drainSeconds` at the rate one replica
//!    delivers now — the larger, within the bounds. It is never 0 while a
//!    message is ready or unacknowledged, nor while the unacknowledged count
//!    is unknown (AMQP figures only): such a role never goes to zero.
//! 2. **Windows** (as the HorizontalPodAutoscaler's stabilisation): up to
//!    the lowest recommendation of the up window, down to the highest of the
//!    down window — and only once the history covers that window (after an
//!    operator restart, a full window passes before a move).
//! 3. **Steps** bound each move (`maxStep`), so a spike climbs in steps and
//!    a quiet spell descends in steps.
//! 4. **Zero** only after [`ZERO_QUIET`] (or the down window, if longer)
//!    of recommendations of 0: the management API's counts of messages in
//!    hand lag by one statistics interval, so a message a consumer took just
//!    now shows as unacknowledged within that time.
//! 5. **Wake**: a role at zero with a message waiting gets one replica at
//!    once, whatever the up window.

use std::{collections::VecDeque, time::Duration};

use crate::api::Autoscale;

/// How long a role must have asked for nothing before it goes to zero:
/// two statistics intervals of RabbitMQ's management API (5 s by default).
pub const ZERO_QUIET: Duration = Duration::from_secs(10);

/// The bounds and pace of one role.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub min: u32,
    pub max: u32,
    pub backlog_per_replica: Option<u32>,
    pub drain_seconds: Option<u32>,
    pub up_window: Duration,
    pub down_window: Duration,
    pub up_step: u32,
    pub down_step: u32,
    /// See [`ZERO_QUIET`].
    pub zero_quiet: Duration,
}

fn non_negative(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

impl From<&Autoscale> for Policy {
    fn from(a: &Autoscale) -> Self {
        let min = non_negative(a.min());
        Self {
            min,
            max: non_negative(a.max_replicas).max(min),
            backlog_per_replica: a.backlog_per_replica.map(non_negative).filter(|n| *n > 0),
            drain_seconds: a.drain_seconds.map(non_negative).filter(|n| *n > 0),
            up_window: Duration::from_secs(non_negative(a.up_window_seconds()).into()),
            down_window: Duration::from_secs(non_negative(a.down_window_seconds()).into()),
            up_step: non_negative(a.up_step()).max(1),
            down_step: non_negative(a.down_step()).max(1),
            zero_quiet: ZERO_QUIET,
        }
    }
}

/// One reading of the role's consumer group queues, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Messages ready for delivery (`None`: the broker could not be read).
    pub ready: Option<i64>,
    /// Messages delivered and not acknowledged (`None`: not reported, AMQP figures).
    pub unacknowledged: Option<i64>,
    /// Messages delivered per second (`None`: not reported).
    pub deliver_rate: Option<f64>,
}

impl Sample {
    /// Ready + unacknowledged (what is known of it).
    pub fn backlog(&self) -> Option<i64> {
        Some(self.ready? + self.unacknowledged.unwrap_or(0))
    }

    /// Whether nothing at all is ready or unacknowledged, as far as is known
    /// for sure: with no replica, nothing of ours can hold a message.
    fn surely_empty(&self, current: u32) -> bool {
        self.ready == Some(0)
            && (self.unacknowledged == Some(0) || (self.unacknowledged.is_none() && current == 0))
    }
}

/// The recommendations of one role over time (the longer window's worth).
#[derive(Clone, Debug, Default)]
pub struct History {
    /// `(when, recommendation)`, oldest first.
    recommendations: VecDeque<(Duration, u32)>,
    /// When this history began (the first recommendation).
    since: Option<Duration>,
}

impl History {
    fn record(&mut self, now: Duration, recommendation: u32, keep: Duration) {
        self.since.get_or_insert(now);
        self.recommendations.push_back((now, recommendation));
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) > keep)
        {
            self.recommendations.pop_front();
        }
    }

    fn within(&self, now: Duration, window: Duration) -> impl Iterator<Item = u32> + '_ {
        self.recommendations
            .iter()
            .filter(move |(at, _)| now.saturating_sub(*at) <= window)
            .map(|(_, r)| *r)
    }

    fn covers(&self, now: Duration, window: Duration) -> bool {
        self.since
            .is_some_and(|since| now.saturating_sub(since) >= window)
    }
}

/// What to do with one role now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Replicas to have (equal to the current ones: hold).
    pub replicas: u32,
    /// What the backlog alone asks for, within the bounds (`None`: unknown backlog).
    pub recommendation: Option<u32>,
    /// Why, in words, with the inputs.
    pub reason: String,
}

fn ceil_div(n: u64, d: u64) -> u64 {
    n.div_ceil(d.max(1))
}

/// What the backlog alone asks for, within the bounds, and how it was found.
pub fn recommend(policy: &Policy, sample: &Sample, current: u32) -> Option<(u32, String)> {
    let backlog = u64::try_from(sample.backlog()?).unwrap_or(0);
    let mut asks = Vec::new();
    if let Some(per) = policy.backlog_per_replica {
        let n = ceil_div(backlog, per.into());
        asks.push((n, format!("{per}/replica asks {n}")));
    }
    if let Some(secs) = policy.drain_seconds {
        match sample.deliver_rate.filter(|r| *r > 0.0 && current > 0) {
            Some(rate) => {
                let per_replica = rate / f64::from(current);
                let n = (backlog as f64 / (per_replica * f64::from(secs))).ceil() as u64;
                asks.push((
                    n,
                    format!("draining in {secs}s at {per_replica:.1}/s per replica asks {n}"),
                ));
            }
            // No rate to go by: keep what runs (at least one for a backlog).
            None if backlog > 0 => asks.push((
                u64::from(current.max(1)),
                format!(
                    "no delivery rate yet, {secs}s drain keeps {}",
                    current.max(1)
                ),
            )),
            None => asks.push((0, format!("{secs}s drain of nothing asks 0"))),
        }
    }
    let (mut n, mut why) = asks
        .into_iter()
        .max_by_key(|(n, _)| *n)
        .unwrap_or((u64::from(current), "no target".to_owned()));
    if n == 0 && !sample.surely_empty(current) {
        n = 1;
        why = match sample.unacknowledged {
            None => "unacknowledged count unknown (no management API): at least 1".to_owned(),
            Some(_) => "messages in hand: at least 1".to_owned(),
        };
    }
    let bounded = u32::try_from(n)
        .unwrap_or(u32::MAX)
        .clamp(policy.min, policy.max);
    let inputs = match (sample.unacknowledged, sample.deliver_rate) {
        (Some(u), Some(r)) => format!(
            "backlog {backlog} ({} ready, {u} unacked, {r:.1}/s)",
            sample.ready.unwrap_or(0)
        ),
        (Some(u), None) => format!(
            "backlog {backlog} ({} ready, {u} unacked)",
            sample.ready.unwrap_or(0)
        ),
        _ => format!("backlog {backlog} (ready only)"),
    };
    Some((bounded, format!("{inputs}: {why}")))
}

/// Decides the replicas of a role that has `current` now, recording the
/// recommendation in `history`. `now` is any monotonic clock.
pub fn decide(
    policy: &Policy,
    history: &mut History,
    now: Duration,
    current: u32,
    sample: &Sample,
) -> Decision {
    let Some((recommendation, why)) = recommend(policy, sample, current) else {
        let replicas = current.clamp(policy.min, policy.max);
        return Decision {
            replicas,
            recommendation: None,
            reason: format!("broker figures unknown: holding {replicas}"),
        };
    };
    let zero_quiet = policy.down_window.max(policy.zero_quiet);
    history.record(now, recommendation, policy.up_window.max(zero_quiet));
    let up = history
        .within(now, policy.up_window)
        .min()
        .unwrap_or(recommendation);
    let down = history
        .within(now, policy.down_window)
        .max()
        .unwrap_or(recommendation);
    let (mut replicas, mut how) = if up > current && history.covers(now, policy.up_window) {
        let to = up.min(current.saturating_add(policy.up_step));
        let capped = if to < up {
            format!(" (step {})", policy.up_step)
        } else {
            String::new()
        };
        (to, format!("{current} -> {to}{capped}"))
    } else if down < current {
        let quiet_enough =
            history.covers(now, zero_quiet) && history.within(now, zero_quiet).max() == Some(0);
        if history.covers(now, policy.down_window) {
            let to = down.max(current.saturating_sub(policy.down_step));
            let wait = format!(" (zero after {}s without a message)", zero_quiet.as_secs());
            match to {
                0 if !quiet_enough && current == 1 => (1, format!("holding 1{wait}")),
                0 if !quiet_enough => (1, format!("{current} -> 1{wait}")),
                _ if to > down => (to, format!("{current} -> {to} (step {})", policy.down_step)),
                _ => (to, format!("{current} -> {to}")),
            }
        } else {
            (
                current,
                format!(
                    "holding {current} until {}s of figures are seen",
                    policy.down_window.as_secs()
                ),
            )
        }
    } else if recommendation != current {
        let window = if recommendation > current {
            policy.up_window
        } else {
            policy.down_window
        };
        (
            current,
            format!(
                "holding {current} for the {}s {} window",
                window.as_secs(),
                if recommendation > current {
                    "up"
                } else {
                    "down"
                }
            ),
        )
    } else {
        (current, format!("holding {current}"))
    };
    if current == 0 && recommendation > 0 {
        if replicas == 0 {
            replicas = 1;
            how = "0 -> 1".to_owned();
        }
        how.push_str(" (wake)");
    }
    let bounded = replicas.clamp(policy.min, policy.max);
    if bounded != replicas {
        how = format!(
            "{current} -> {bounded} (bounds {}..{})",
            policy.min, policy.max
        );
    }
    Decision {
        replicas: bounded,
        recommendation: Some(recommendation),
        reason: format!("{why}; {how}"),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
