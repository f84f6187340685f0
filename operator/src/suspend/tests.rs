use super::*;

fn w(deployment: &str, role: &str, left: &[&str]) -> WorkloadDrain {
    WorkloadDrain {
        deployment: deployment.into(),
        role: role.into(),
        left: left.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn all() -> Vec<String> {
    vec!["s-a-web".into(), "s-a-worker".into()]
}

const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn a_worker_still_holding_messages_keeps_everything_up_and_is_named() {
    let s = decide(
        &[w(
            "s-a-worker",
            "worker",
            &["s-a-worker-1: 2 message(s) in hand"],
        )],
        None,
        &all(),
        Duration::from_secs(5),
        TIMEOUT,
    );
    assert_eq!(s.reason, DRAINING);
    assert!(s.zero.is_empty());
    assert!(
        s.message
            .contains("worker s-a-worker-1: 2 message(s) in hand"),
        "{}",
        s.message
    );
    assert!(s.message.contains("5 s of 300 s"), "{}", s.message);
}

#[test]
fn drained_workers_go_to_zero_while_the_web_roles_drain_their_outbox() {
    let s = decide(
        &[w("s-a-worker", "worker", &[])],
        Some(&[w(
            "s-a-web",
            "web",
            &["s-a-web-1: 3 event(s) in the outbox"],
        )]),
        &all(),
        Duration::from_secs(5),
        TIMEOUT,
    );
    assert_eq!(s.reason, DRAINING);
    assert_eq!(s.zero, BTreeSet::from(["s-a-worker".to_owned()]));
    assert!(
        s.message
            .contains("web s-a-web-1: 3 event(s) in the outbox")
    );
}

#[test]
fn roles_with_no_pods_are_drained_at_once() {
    let s = decide(
        &[w("s-a-worker", "worker", &[])],
        Some(&[w("s-a-web", "web", &[])]),
        &all(),
        Duration::ZERO,
        TIMEOUT,
    );
    assert_eq!(s.reason, DRAINED);
    assert_eq!(s.zero.len(), 2);
}

#[test]
fn past_the_timeout_everything_goes_to_zero_and_what_was_left_is_named() {
    let s = decide(
        &[w(
            "s-a-worker",
            "worker",
            &["s-a-worker-1: /drain not reachable"],
        )],
        None,
        &all(),
        Duration::from_secs(301),
        TIMEOUT,
    );
    assert_eq!(s.reason, DRAIN_TIMED_OUT);
    assert_eq!(s.zero.len(), 2);
    assert!(s.message.contains("not drained within 300 s"));
    assert!(s.message.contains("s-a-worker-1: /drain not reachable"));
}

fn time(second: i64) -> Time {
    Time(jiff::Timestamp::from_second(second).unwrap())
}

#[test]
fn the_status_says_suspended_and_a_resume_turns_the_condition_false() {
    let mut status = StreamStatus {
        phase: StreamPhase::Running,
        observed_generation: Some(3),
        ..Default::default()
    };
    let s = Suspension {
        reason: DRAINING,
        message: "left: x".into(),
        zero: BTreeSet::new(),
    };
    mark(&mut status, Some(&s), &time(100));
    assert_eq!(status.phase, StreamPhase::Suspended);
    let drained = Suspension {
        reason: DRAINED,
        ..s
    };
    mark(&mut status, Some(&drained), &time(110));
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == SUSPENDED)
        .unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", DRAINED));
    assert_eq!(
        c.last_transition_time,
        time(100),
        "the suspend began at 100"
    );
    let ready = status.conditions.iter().find(|c| c.type_ == READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Suspended")
    );

    mark(&mut status, None, &time(120));
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == SUSPENDED)
        .unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", RESUMED));
}

#[test]
fn a_stream_never_suspended_gets_no_suspended_condition() {
    let mut status = StreamStatus::default();
    mark(&mut status, None, &time(1));
    assert!(status.conditions.is_empty());
}
