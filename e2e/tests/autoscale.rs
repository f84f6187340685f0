//! A burst into an autoscaled worker on the real node
//! ([`eventflow_e2e::burst`]): the example system's account worker with
//! `autoscale: {minReplicas: 0, maxReplicas: 4, backlogPerReplica: 50}`
//! starts at zero; 500 accounts created at once give it 2,000 events; it
//! wakes, scales up and returns to zero, every account ends ACTIVE with each
//! event once in the account feed and nothing dead-lettered. The figures and
//! the replica timeline are printed (`make measure-burst` runs the same
//! burst with a fixed single replica beside it).
//!
//! The shared example system is changed for the run and restored after.

use std::time::Duration;

use eventflow_e2e::burst::{self, ACCOUNTS};
use eventflow_e2e::*;
use kube::Client;

#[tokio::test]
#[ignore = "needs a cluster"]
async fn a_burst_into_an_autoscaled_worker_wakes_it_scales_it_up_and_back_to_zero_every_event_once()
{
    let client = Client::try_default().await.unwrap();
    example_system();
    burst::set_autoscale(Some(burst::autoscale())).unwrap();
    let zero = burst::await_replicas(&client, 0, Duration::from_secs(120)).await;
    let scaled = match zero {
        Ok(()) => burst::burst(&client, &format!("scaled{}", std::process::id()), true).await,
        Err(e) => Err(e),
    };
    // Restored whatever happened (the example's fixed replica).
    burst::set_autoscale(None).unwrap();
    burst::await_replicas(&client, 1, Duration::from_secs(120))
        .await
        .unwrap();
    let scaled = scaled.unwrap();
    println!(
        "a burst of {ACCOUNTS} accounts ({} events) into the autoscaled account worker: first scale-up after {}, peak {} replicas, every account ACTIVE after {}, back to zero after {}; replicas {}",
        4 * ACCOUNTS,
        burst::secs(scaled.first_scale_up),
        scaled.peak,
        burst::secs(Some(scaled.drained)),
        burst::secs(scaled.back_to_zero),
        burst::timeline(&scaled)
    );
    assert_eq!(scaled.timeline[0].1, 0, "the burst began at zero");
    assert!(scaled.peak >= 2, "scaled up: {}", burst::timeline(&scaled));
    assert!(
        scaled.back_to_zero.is_some(),
        "{}",
        burst::timeline(&scaled)
    );
}
