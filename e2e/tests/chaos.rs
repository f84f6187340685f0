//! The example system under faults, short (`make chaos` is the long run):
//! during a load run of about 90 s one pod of every kind is deleted — a web
//! role, a worker role, a broker node, PostgreSQL (each gracefully or
//! forced, by a seed printed with the kills) and the operator's leader —
//! and once the system settled the run must account for every order
//! (`eventflow_e2e::invariants`).
//!
//! The system is a copy of the examples in a namespace of its own, so the
//! kills and whatever they leave behind (dead letters, stuck orders) never
//! reach the shared example system other tests read. The operator's leader
//! is shared: this binary runs alone (cargo runs test binaries one after
//! another), and the other replica takes the Lease over.

use std::time::Duration;

use eventflow_e2e::*;
use serde_json::json;

#[tokio::test]
#[ignore = "needs a cluster"]
async fn after_one_kill_of_every_kind_every_order_is_accounted_for() {
    let client = client().await;
    install_operator().unwrap();
    let ns = format!(
        "e2e-chaos-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 0x10_0000
    );
    apply_examples_into(&ns).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    println!("chaos in {ns}, seed {seed}");
    let run = LoadRun {
        namespace: ns.clone(),
        // 90 s of posting; stock for every order.
        plan: json!({"orders": 450, "ratePerSecond": 5, "failureShare": 0.2, "accounts": 3,
                     "products": 3, "stockPerProduct": 200, "followSeconds": 120}),
        load_timeout: Duration::from_secs(300),
        settle_timeout: Duration::from_secs(120),
    };
    // The first kill 10 s in, then one every 16 s: all five within the posting.
    let schedule = each_kind_once(seed, Duration::from_secs(10), Duration::from_secs(16));
    let facts = chaos_run(&client, &run, schedule.into_iter()).await;
    // The copy goes whatever the outcome.
    let deleted = delete_examples_copy(&ns);
    let accounting = account(&facts.unwrap());
    println!("{accounting}");
    deleted.unwrap();
    assert_eq!(
        accounting.kills.values().map(|(g, f)| g + f).sum::<u32>(),
        5,
        "one kill of each kind: {:?}",
        accounting.kills
    );
    assert!(
        accounting.violations.is_empty(),
        "invariants broken:\n{accounting}"
    );
}
