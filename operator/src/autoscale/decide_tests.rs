//! The decision over recorded backlog timelines: a burst, a steady load, a
//! sawtooth; the guards at zero; windows, steps and bounds.

use super::*;

const TICK: Duration = Duration::from_secs(2);

fn policy() -> Policy {
    Policy {
        min: 0,
        max: 10,
        backlog_per_replica: Some(100),
        drain_seconds: None,
        up_window: Duration::ZERO,
        down_window: Duration::from_secs(30),
        up_step: 4,
        down_step: 2,
        zero_quiet: ZERO_QUIET,
    }
}

fn empty() -> Sample {
    Sample {
        ready: Some(0),
        unacknowledged: Some(0),
        deliver_rate: None,
    }
}

fn backlog(ready: i64, unacknowledged: i64) -> Sample {
    Sample {
        ready: Some(ready),
        unacknowledged: Some(unacknowledged),
        deliver_rate: None,
    }
}

/// Runs `policy` over `timeline` (one sample per tick, replicas applied at
/// once); the replicas after each tick.
fn run(policy: &Policy, start: u32, timeline: impl IntoIterator<Item = Sample>) -> Vec<u32> {
    let mut history = History::default();
    let mut current = start;
    let mut now = Duration::ZERO;
    timeline
        .into_iter()
        .map(|sample| {
            let d = decide(policy, &mut history, now, current, &sample);
            assert!(
                d.replicas.abs_diff(current) <= policy.up_step.max(policy.down_step),
                "a move beyond the step bound at {now:?}: {current} -> {} ({})",
                d.replicas,
                d.reason
            );
            current = d.replicas;
            now += TICK;
            current
        })
        .collect()
}

/// How often the direction of change flips (up then down = 1).
fn reversals(replicas: &[u32]) -> usize {
    let moves: Vec<bool> = replicas
        .windows(2)
        .filter(|w| w[0] != w[1])
        .map(|w| w[1] > w[0])
        .collect();
    moves.windows(2).filter(|m| m[0] != m[1]).count()
}

#[test]
fn a_burst_wakes_the_role_climbs_in_steps_and_returns_to_zero_after_the_window() {
    let p = policy();
    // 5 idle ticks, a burst of 2000 consumed at 60 per replica per tick, then idle.
    let mut replicas = 0u32;
    let mut left = 0i64;
    let mut timeline = Vec::new();
    let mut history = History::default();
    let mut now = Duration::ZERO;
    let mut trace = Vec::new();
    for tick in 0..120 {
        if tick == 5 {
            left = 2000;
        }
        let sample = backlog(left, 0);
        timeline.push(sample);
        let d = decide(&p, &mut history, now, replicas, &sample);
        assert!(d.replicas.abs_diff(replicas) <= 4, "{}", d.reason);
        replicas = d.replicas;
        left = (left - 60 * i64::from(replicas)).max(0);
        trace.push(replicas);
        now += TICK;
    }
    assert_eq!(&trace[..5], &[0; 5], "idle at zero: {trace:?}");
    assert_eq!(trace[5], 4, "woken and stepped up at once: {trace:?}");
    assert_eq!(
        *trace.iter().max().unwrap(),
        10,
        "peak at maxReplicas: {trace:?}"
    );
    assert_eq!(*trace.last().unwrap(), 0, "back to zero: {trace:?}");
    assert_eq!(reversals(&trace), 1, "one climb, one descent: {trace:?}");
    // The descent starts only once the 30 s window (15 ticks) holds no
    // recommendation of the peak any more.
    let peak_asked = timeline
        .iter()
        .rposition(|s| s.ready.unwrap_or(0) > 900)
        .unwrap();
    let first_down = trace.windows(2).position(|w| w[1] < w[0]).unwrap() + 1;
    assert!(
        first_down > peak_asked + 15,
        "scaled down at tick {first_down}, the peak was last asked for at {peak_asked}: {trace:?}"
    );
}

#[test]
fn a_steady_backlog_settles_on_one_replica_count_and_stays() {
    let trace = run(&policy(), 1, std::iter::repeat_n(backlog(430, 20), 60));
    assert_eq!(&trace[..2], &[5, 5], "{trace:?}");
    assert!(trace.iter().all(|r| *r == 5), "{trace:?}");
}

#[test]
fn a_sawtooth_shorter_than_the_down_window_never_scales_down_until_it_ends() {
    // 10 s of 1000 messages, 10 s of none, three times; then quiet.
    let tooth = (0..10).map(|i| if i < 5 { backlog(1000, 0) } else { empty() });
    let timeline: Vec<Sample> = tooth
        .clone()
        .chain(tooth.clone())
        .chain(tooth)
        .chain(std::iter::repeat_n(empty(), 40))
        .collect();
    let trace = run(&policy(), 1, timeline);
    assert_eq!(trace[0], 5, "{trace:?}");
    assert_eq!(trace[1], 9, "{trace:?}");
    assert_eq!(trace[2], 10, "{trace:?}");
    assert!(
        trace[2..30].iter().all(|r| *r == 10),
        "held through the sawtooth: {trace:?}"
    );
    assert_eq!(reversals(&trace), 1, "{trace:?}");
    assert_eq!(*trace.last().unwrap(), 0, "{trace:?}");
}

#[test]
fn an_up_window_waits_for_a_sustained_backlog() {
    let p = Policy {
        up_window: Duration::from_secs(6),
        ..policy()
    };
    // A one-tick spike does not scale up; a backlog held 6 s does.
    let trace = run(
        &p,
        2,
        [backlog(900, 0), backlog(100, 0)]
            .into_iter()
            .chain(std::iter::repeat_n(backlog(900, 0), 5)),
    );
    assert_eq!(trace, [2, 2, 2, 2, 2, 6, 9], "{trace:?}");
}

#[test]
fn nothing_unacknowledged_is_ever_left_without_a_replica() {
    let p = Policy {
        down_window: Duration::ZERO,
        ..policy()
    };
    // Empty queue but three messages in hand: at least one replica stays.
    let trace = run(&p, 3, std::iter::repeat_n(backlog(0, 3), 10));
    assert!(trace.iter().all(|r| *r >= 1), "{trace:?}");
    assert_eq!(*trace.last().unwrap(), 1, "{trace:?}");
}

#[test]
fn zero_waits_for_the_quiet_time_even_with_a_shorter_down_window() {
    let p = Policy {
        down_window: Duration::from_secs(2),
        ..policy()
    };
    // One message seen, then nothing: 1 replica holds for 10 s (5 ticks) after it.
    let trace = run(
        &p,
        1,
        std::iter::once(backlog(1, 0)).chain(std::iter::repeat_n(empty(), 7)),
    );
    assert_eq!(trace, [1, 1, 1, 1, 1, 1, 0, 0], "{trace:?}");
    let mut h = History::default();
    decide(&p, &mut h, Duration::ZERO, 1, &empty());
    let d = decide(&p, &mut h, Duration::from_secs(4), 1, &empty());
    assert_eq!(
        d.reason,
        "backlog 0 (0 ready, 0 unacked): 100/replica asks 0; holding 1 (zero after 10s without a message)"
    );
}

#[test]
fn without_unacknowledged_counts_a_running_role_never_goes_to_zero() {
    let p = Policy {
        down_window: Duration::ZERO,
        ..policy()
    };
    let ready_only = |ready| Sample {
        ready: Some(ready),
        unacknowledged: None,
        deliver_rate: None,
    };
    let trace = run(&p, 4, std::iter::repeat_n(ready_only(0), 5));
    assert_eq!(trace, [2, 1, 1, 1, 1], "{trace:?}");
    // At zero nothing of ours holds a message: it stays there until one is ready.
    let trace = run(&p, 0, [ready_only(0), ready_only(0), ready_only(1)]);
    assert_eq!(trace, [0, 0, 1], "{trace:?}");
}

#[test]
fn a_message_in_an_empty_queue_wakes_a_role_at_zero_whatever_the_up_window() {
    let p = Policy {
        up_window: Duration::from_secs(60),
        ..policy()
    };
    let trace = run(&p, 0, [empty(), empty(), backlog(1, 0)]);
    assert_eq!(trace, [0, 0, 1]);
    let d = decide(
        &p,
        &mut History::default(),
        Duration::ZERO,
        0,
        &backlog(1, 0),
    );
    assert!(d.reason.ends_with("0 -> 1 (wake)"), "{}", d.reason);
    // Without a window, a burst at zero wakes straight into a step.
    let d = decide(
        &policy(),
        &mut History::default(),
        Duration::ZERO,
        0,
        &backlog(900, 0),
    );
    assert!(d.reason.ends_with("0 -> 4 (step 4) (wake)"), "{}", d.reason);
}

#[test]
fn unknown_figures_hold_the_replicas() {
    let mut history = History::default();
    let d = decide(
        &policy(),
        &mut history,
        Duration::ZERO,
        3,
        &Sample::default(),
    );
    assert_eq!(d.replicas, 3);
    assert_eq!(d.recommendation, None);
    assert!(d.reason.contains("unknown"), "{}", d.reason);
}

#[test]
fn after_a_restart_a_full_down_window_passes_before_a_scale_down() {
    let trace = run(&policy(), 6, std::iter::repeat_n(empty(), 20));
    // 30 s window at 2 s ticks: the 16th look (30 s after the first) may go down.
    assert!(trace[..15].iter().all(|r| *r == 6), "{trace:?}");
    assert_eq!(&trace[15..], &[4, 2, 0, 0, 0], "{trace:?}");
}

#[test]
fn drain_seconds_asks_for_the_replicas_that_drain_the_backlog_in_time() {
    let p = Policy {
        backlog_per_replica: None,
        drain_seconds: Some(10),
        up_step: 10,
        ..policy()
    };
    // Two replicas deliver 100/s together: 50/s each; 3000 in 10 s needs 6.
    let sample = Sample {
        ready: Some(2900),
        unacknowledged: Some(100),
        deliver_rate: Some(100.0),
    };
    let (n, why) = recommend(&p, &sample, 2).unwrap();
    assert_eq!(n, 6, "{why}");
    assert!(why.contains("draining in 10s"), "{why}");
    // Without a rate yet, a backlog keeps what runs (at least one).
    let no_rate = Sample {
        deliver_rate: None,
        ..sample
    };
    assert_eq!(recommend(&p, &no_rate, 0).unwrap().0, 1);
    assert_eq!(recommend(&p, &no_rate, 3).unwrap().0, 3);
}

#[test]
fn both_targets_take_the_larger_and_bounds_win_at_once() {
    let p = Policy {
        drain_seconds: Some(100),
        ..policy()
    };
    let sample = Sample {
        ready: Some(250),
        unacknowledged: Some(0),
        deliver_rate: Some(1.0),
    };
    // 250/100 asks 3; 250 in 100 s at 1/s for the one replica asks 3 as well — and 2 replicas at 0.5/s asks 5.
    assert_eq!(recommend(&p, &sample, 1).unwrap().0, 3);
    assert_eq!(recommend(&p, &sample, 2).unwrap().0, 5);
    // Lowered maxReplicas and raised minReplicas apply at the next decision, beyond steps.
    let mut h = History::default();
    let d = decide(&p, &mut h, Duration::ZERO, 14, &backlog(5000, 0));
    assert_eq!(d.replicas, 10, "{}", d.reason);
    let raised = Policy { min: 3, ..policy() };
    let d = decide(
        &raised,
        &mut History::default(),
        Duration::ZERO,
        0,
        &empty(),
    );
    assert_eq!(d.replicas, 3, "{}", d.reason);
}

#[test]
fn the_reason_names_the_inputs_and_the_move() {
    let mut h = History::default();
    let d = decide(&policy(), &mut h, Duration::ZERO, 1, &backlog(1990, 10));
    assert_eq!(d.replicas, 5);
    assert_eq!(
        d.reason,
        "backlog 2000 (1990 ready, 10 unacked): 100/replica asks 20; 1 -> 5 (step 4)"
    );
}
