//! Data Flow stream definitions on the real node (`examples/dataflow/`):
//! the AppRegistrations and Data Flow's classic
//! `time | transform --expression=payload.toUpperCase() | log` written as a
//! DSL Stream reach Running, messages flow through the expression, a tap
//! `:ticktock-dsl.transform > log` gets a copy of every message, Data Flow
//! deployment properties scale the source, and deleting the Streams removes
//! their queues.

use std::time::Duration;

use eventflow_e2e::*;
use serde_json::json;

const NS: &str = EXAMPLES_NS;
/// The Streams, in the order they are deleted.
const STREAMS: [&str; 2] = ["11-ticktock-tap.yaml", "10-ticktock.yaml"];

fn apply(file: &str) {
    kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &format!("examples/dataflow/{file}"),
    ]);
}

fn delete(file: &str, ignore_missing: bool) {
    let path = format!("examples/dataflow/{file}");
    let mut args = vec!["delete", "--wait=true", "-f", &path];
    if ignore_missing {
        args.push("--ignore-not-found");
    }
    kubectl(&args);
}

#[tokio::test]
#[ignore = "needs a cluster"]
async fn the_dsl_ticktock_runs_through_its_expression_and_its_tap_gets_every_message() {
    let client = client().await;
    example_system();
    for file in STREAMS {
        delete(file, true);
    }
    apply("00-apps.yaml");
    // The tap first: its queue exists before the source's first message.
    apply("11-ticktock-tap.yaml");
    wait_stream_condition("ticktock-dsl-tap", "TopologyReady");
    apply("10-ticktock.yaml");
    for s in ["ticktock-dsl", "ticktock-dsl-tap"] {
        wait_stream_condition(s, "Ready");
    }

    // Ticks flow time -> transform (the expression upper-cases them) -> log.
    wait_for(
        Duration::from_secs(120),
        "the log counting upper-cased ticks",
        || async {
            let sink = actuator(&client, "ticktock-dsl", "log", "sink").await;
            let last = sink["last"].as_str().unwrap_or_default().to_owned();
            Ok(count(&sink, "received") >= 3 && last.contains("\"SEQUENCE\":"))
        },
    )
    .await
    .unwrap();

    // deployer.time.count=0 stops the source; then log and tap hold the same messages.
    kubectl(&[
        "-n",
        NS,
        "patch",
        "stream",
        "ticktock-dsl",
        "--type=merge",
        "-p",
        &json!({"spec": {"deploymentProperties": {"deployer.time.count": "0"}}}).to_string(),
    ]);
    wait_no_pods(
        &client,
        "eventflow.dev/stream=ticktock-dsl,eventflow.dev/app=time",
    )
    .await;
    let received = same_messages(
        &client,
        ("ticktock-dsl", "log"),
        ("ticktock-dsl-tap", "log"),
    )
    .await;
    eprintln!("log and tap each received {received} messages");

    // Deleting the Streams removes their queues and exchanges.
    for file in STREAMS {
        delete(file, false);
    }
    wait_pods_gone(&client, &["ticktock-dsl", "ticktock-dsl-tap"]).await;
    let conn = broker_connection(&client).await;
    assert_removed(
        &conn,
        &[
            "ticktock-dsl-time.ticktock-dsl",
            "ticktock-dsl-transform.ticktock-dsl",
            "ticktock-dsl-transform.ticktock-dsl.dlq",
            "ticktock-dsl-transform.ticktock-dsl-tap",
        ],
        &["ticktock-dsl-time", "ticktock-dsl-transform"],
    )
    .await;
}
