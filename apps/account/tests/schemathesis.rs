//! Schemathesis fuzzes the served OpenAPI document against a real `all`
//! process: no 5xx, no undocumented status, no response violating the schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{BIN, READY_TIMEOUT};
use eventflow_runtime::testing::{AppProcess, amqp_uri, fresh_sqlite, unique_namespace};

/// The crate's directory, read when the test runs: a target directory shared
/// between clones may hold a binary built in another checkout.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq"]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let env = vec![
        ("EVENTFLOW_BROKER_URI", amqp_uri()),
        ("POD_NAMESPACE", unique_namespace()),
        ("DATABASE_URL", fresh_sqlite()),
    ];
    let mut all = AppProcess::spawn(BIN, "all", &env);
    all.wait_ready(READY_TIMEOUT).await;
    let script = format!("{}/tests/schemathesis.sh", manifest_dir());
    let base = all.http.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg(script).arg(base).output().unwrap()
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis failed:\n{report}\n--- app log ---\n{}",
        all.log_text()
    );
    // Every operation of the document was exercised, not just some.
    let number = |label: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| {
                v.trim()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
    };
    let selected = number("Selected:").expect("a summary with Selected:");
    assert_eq!(
        number("Tested:"),
        Some(selected),
        "not every operation was tested:\n{report}"
    );
}
