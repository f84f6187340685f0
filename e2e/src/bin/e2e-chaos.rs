//! `e2e-chaos` (`make chaos`): the example system under faults, on the real
//! cluster in `KUBECONFIG`.
//!
//! Default: a load run of about `--events` events (translated into orders
//! at the measured events per order) while pods of every kind — a web
//! role, a worker role, a broker node, PostgreSQL, the operator's leader —
//! are deleted at random (graceful or `--force --grace-period=0`) every
//! `--kill-every` seconds; then the system is left to settle and the run is
//! accounted for (`eventflow_e2e::invariants`): a table, and exit status 1
//! when an invariant fails.
//!
//! `--broker-restart`: one broker pod deletion while a client per web API
//! sends requests without retrying; prints the failed requests, the longest
//! unavailability per API, app pod restarts and the outbox drain time.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use eventflow_e2e::{
    EXAMPLES_NS, LoadRun, account, apply_examples_into, broker_restart, chaos_run, client,
    example_system, install_operator, orders_for_events, random_schedule,
};
use serde_json::json;

/// Events one order makes across the four contexts' feeds (its saga: 10 in
/// the order context, 5 in the payment context, about 8 in the warehouse),
/// plus the 2 events of each stocked unit at 1.2 units stocked per order:
/// 25.6 measured on the example system (runs of 3,572 and 4,036 orders), so
/// a run of `--events N` makes at least N.
const EVENTS_PER_ORDER: f64 = 25.0;
/// Products of a run; stock is 1.2 units per order, spread over them. Not a
/// multiple of 5: with a fifth of the orders designed to fail, order i buys
/// product i mod PRODUCTS, and 5 products would give every failing order one product.
const PRODUCTS: u32 = 7;

const USAGE: &str = "\
usage: e2e-chaos [--events N] [--rate R] [--kill-every MIN..MAX] [--seed S]
                 [--max-minutes M] [--namespace NS]
       e2e-chaos --broker-restart [--force] [--max-minutes M] [--namespace NS]

  --events N            events the load makes, all contexts (default 100000)
  --rate R              orders posted per second (default 10)
  --kill-every MIN..MAX seconds between kills (default 10..30)
  --seed S              the kill schedule's seed (default: the clock; printed)
  --max-minutes M       hard bound on the whole run (default 90)
  --namespace NS        a copy of the example system there (made when missing)
                        instead of the examples' own namespace
  --broker-restart      measure one broker restart instead (see above)
  --force               with --broker-restart: delete the pod --force --grace-period=0

Needs KUBECONFIG and kubectl/helm on PATH: eval \"$(e2e/cluster/cluster.sh env)\"";

struct Args {
    events: u64,
    rate: f64,
    kill_every: (Duration, Duration),
    seed: u64,
    max: Duration,
    namespace: String,
    broker_restart: bool,
    force: bool,
}

fn seconds_range(v: &str) -> Result<(Duration, Duration)> {
    let (a, b) = v
        .split_once("..")
        .ok_or_else(|| anyhow!("--kill-every {v}: expected MIN..MAX"))?;
    let (a, b): (f64, f64) = (a.trim().parse()?, b.trim().parse()?);
    if !(a > 0.0 && b >= a && b.is_finite()) {
        bail!("--kill-every {v}: need 0 < MIN <= MAX");
    }
    Ok((Duration::from_secs_f64(a), Duration::from_secs_f64(b)))
}

fn parse_args() -> Result<Args> {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut args = Args {
        events: 100_000,
        rate: 10.0,
        kill_every: (Duration::from_secs(10), Duration::from_secs(30)),
        seed: clock,
        max: Duration::from_secs(90 * 60),
        namespace: EXAMPLES_NS.to_owned(),
        broker_restart: false,
        force: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| anyhow!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--events" => {
                let v = value("--events")?;
                args.events = v.parse().with_context(|| format!("--events {v}"))?;
            }
            "--rate" => {
                let v = value("--rate")?;
                args.rate = v.parse().with_context(|| format!("--rate {v}"))?;
            }
            "--kill-every" => args.kill_every = seconds_range(&value("--kill-every")?)?,
            "--seed" => {
                let v = value("--seed")?;
                args.seed = v.parse().with_context(|| format!("--seed {v}"))?;
            }
            "--max-minutes" => {
                let v = value("--max-minutes")?;
                let m: f64 = v.parse().with_context(|| format!("--max-minutes {v}"))?;
                if !(m > 0.0 && m.is_finite()) {
                    bail!("--max-minutes must be positive");
                }
                args.max = Duration::from_secs_f64(m * 60.0);
            }
            "--namespace" => args.namespace = value("--namespace")?,
            "--broker-restart" => args.broker_restart = true,
            "--force" => args.force = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "" => {} // an empty CHAOS_ARGS from make
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.events == 0 || !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--events and --rate must be positive");
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let client = client().await;
    if args.namespace == EXAMPLES_NS {
        example_system();
    } else {
        install_operator()?;
        apply_examples_into(&args.namespace)?;
    }
    let bound = args.max;
    if args.broker_restart {
        println!("broker restart in {} (bound {bound:?})", args.namespace);
        let figures = tokio::time::timeout(
            bound,
            broker_restart(&client, &args.namespace, args.force, bound),
        )
        .await
        .map_err(|_| anyhow!("not done within --max-minutes"))??;
        print!("{figures}");
        return Ok(());
    }

    let orders = orders_for_events(args.events, EVENTS_PER_ORDER);
    let stock = (f64::from(orders) * 1.2 / f64::from(PRODUCTS)).ceil() as u32;
    let posting = f64::from(orders) / args.rate;
    let plan = json!({
        "orders": orders, "ratePerSecond": args.rate, "failureShare": 0.2,
        "accounts": 10, "products": PRODUCTS, "stockPerProduct": stock,
        "followSeconds": 300,
    });
    println!(
        "chaos in {}: {orders} orders (~{} events) at {}/s (~{posting:.0} s of posting), \
         a kill every {:?}..{:?}, seed {}, bound {bound:?}",
        args.namespace, args.events, args.rate, args.kill_every.0, args.kill_every.1, args.seed
    );
    let started = Instant::now();
    // Posting, then following each order for at most followSeconds; what is
    // left of the bound (at least 2 minutes) is for settling.
    let load_timeout = Duration::from_secs_f64(posting + 300.0 + 120.0).min(bound);
    let run = LoadRun {
        namespace: args.namespace.clone(),
        plan,
        load_timeout,
        settle_timeout: Duration::from_secs(300),
    };
    let schedule = random_schedule(args.seed, args.kill_every.0, args.kill_every.1);
    let facts = tokio::time::timeout(bound, chaos_run(&client, &run, schedule))
        .await
        .map_err(|_| anyhow!("not done within --max-minutes"))??;
    let accounting = account(&facts);
    println!();
    print!("{accounting}");
    println!(
        "  (events per order, stock included: {:.1}; whole run {:.0} s)",
        accounting.events() as f64 / f64::from(orders.max(1)),
        started.elapsed().as_secs_f64()
    );
    if !accounting.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
