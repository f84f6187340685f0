//! RabbitMQ PerfTest runs: the broker's ceiling beside the consumers.

use std::time::Duration;

use eventflow_runtime::testing::{Ports, amqp_uri, unique_namespace};
use lapin::{options::QueueDeclareOptions, types::FieldTable};

use crate::{Args, PREFETCH, broker::Broker, pieces::Pieces, process::Proc};

/// PerfTest's sending and receiving rates (msg/s) from its summary.
fn perftest_rates(output: &str) -> Option<(f64, f64)> {
    let rate = |key: &str| {
        output.lines().find_map(|l| {
            let (_, rest) = l.split_once(key)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        })
    };
    Some((rate("sending rate avg:")?, rate("receiving rate avg:")?))
}

/// Runs PerfTest to its end; its output.
async fn run_perftest(p: &Pieces, id: &str, options: &[&str]) -> String {
    let mut args: Vec<String> = vec![
        "-cp".into(),
        format!("{}/*", p.perftest_lib.display()),
        "com.rabbitmq.perf.PerfTest".into(),
        "--uri".into(),
        amqp_uri(),
        "--id".into(),
        id.into(),
        // Consumer acks (PerfTest's default), the consumers' prefetch; bounded in time too.
        "--qos".into(),
        PREFETCH.to_string(),
        "--time".into(),
        "300".into(),
    ];
    args.extend(options.iter().map(|s| (*s).to_owned()));
    let mut pt = Proc::spawn("perftest", "java", &args, Ports::reserve());
    pt.wait_exit(Duration::from_secs(360)).await;
    pt.log_text()
}

/// The broker's ceiling, by PerfTest: publish + consume at once (sending and
/// receiving msg/s), and consume only from a pre-filled queue (msg/s).
pub(crate) async fn perftest(
    p: &Pieces,
    a: &Args,
    body: &[u8],
    broker: &mut Broker,
) -> (f64, f64, f64) {
    let n = a.messages.to_string();
    let size = body.len().to_string();
    let queue = format!("{}.perftest", unique_namespace());
    broker.queues.push(queue.clone());
    let out = run_perftest(
        p,
        "publish-consume",
        &[
            "--producers",
            "1",
            "--consumers",
            "1",
            "--size",
            &size,
            "--pmessages",
            &n,
            "--cmessages",
            &n,
            // Publisher confirms, at most 256 outstanding (our relay's batch).
            "--confirm",
            "256",
            "--flag",
            "persistent",
            "--queue",
            &queue,
            "--auto-delete",
            "true",
        ],
    )
    .await;
    let (sent, received) =
        perftest_rates(&out).unwrap_or_else(|| panic!("no rates in PerfTest's summary:\n{out}"));

    // The same drain as the consumers': the messages are in the queue before it starts.
    let queue = format!("{}.perftest-drain", unique_namespace());
    broker.queues.push(queue.clone());
    broker
        .ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    broker.fill("", &queue, body, a.messages as u64).await;
    let out = run_perftest(
        p,
        "drain",
        &[
            "--producers",
            "0",
            "--consumers",
            "1",
            "--cmessages",
            &n,
            "--queue",
            &queue,
            "--predeclared",
            "--skip-binding-queues",
        ],
    )
    .await;
    let (_, drained) =
        perftest_rates(&out).unwrap_or_else(|| panic!("no rates in PerfTest's summary:\n{out}"));
    (sent, received, drained)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_of_perftest_gives_both_rates() {
        let out = "test stopped (Producer reached message limit, Consumer reached message limit)\n\
                   id: ceiling, sending rate avg: 2122 msg/s\n\
                   id: ceiling, receiving rate avg: 2121 msg/s\n";
        assert_eq!(perftest_rates(out), Some((2122.0, 2121.0)));
        assert_eq!(perftest_rates("id: x, time 1.0 s, sent: 1 msg/s"), None);
    }
}
