//! RabbitMQ PerfTest (fetched by `bench/build.sh`), the broker's ceiling
//! for paths 2 and 3: where it is, a run to its end, and its rates.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use eventflow_runtime::testing::temp_dir;

use crate::scratch::cache_dir;

/// Longest PerfTest run (it also stops itself after `--time`).
const TIMEOUT: Duration = Duration::from_secs(360);

/// `$PERFTEST_LIB`, else `$EVENTFLOW_CACHE/perftest/<version of bench/perftest/pom.xml>/lib`;
/// `Err` saying how to get it.
pub(crate) fn lib() -> Result<PathBuf, String> {
    let lib = match std::env::var_os("PERFTEST_LIB") {
        Some(l) => PathBuf::from(l),
        None => {
            let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/perftest/pom.xml");
            let pom = std::fs::read_to_string(&pom)
                .map_err(|e| format!("cannot read {}: {e}", pom.display()))?;
            let version = pom
                .split_once("<perftest.version>")
                .and_then(|(_, rest)| rest.split_once('<'))
                .map(|(v, _)| v.trim().to_owned())
                .ok_or("no <perftest.version> in bench/perftest/pom.xml")?;
            cache_dir().join(format!("perftest/{version}/lib"))
        }
    };
    let found = std::fs::read_dir(&lib).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("perf-test-"))
    });
    if !found {
        return Err(format!(
            "no perf-test jar in {}: run bench/build.sh (make bench does)",
            lib.display()
        ));
    }
    Ok(lib)
}

/// Runs PerfTest with `options` to its end; its output. Panics with the
/// output when it fails.
pub(crate) async fn run(lib: &Path, uri: &str, id: &str, options: &[String]) -> String {
    let log = temp_dir().join(format!("perftest-{id}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let mut child = tokio::process::Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .arg("com.rabbitmq.perf.PerfTest")
        .args(["--uri", uri, "--id", id, "--time", "300"])
        .args(options)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start PerfTest (java): {e}"));
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("PerfTest {id} still running after {TIMEOUT:?}"))
        .unwrap();
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "PerfTest {id} failed with {status}:\n{out}"
    );
    out
}

/// A rate from PerfTest's summary (`sending rate avg:` / `receiving rate avg:`).
pub(crate) fn rate(output: &str, key: &str) -> Option<f64> {
    output.lines().find_map(|l| {
        let (_, rest) = l.split_once(key)?;
        rest.split_whitespace().next()?.parse::<f64>().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_of_perftest_gives_its_rates() {
        let out =
            "id: drain, sending rate avg: 0 msg/s\nid: drain, receiving rate avg: 8120 msg/s\n";
        assert_eq!(rate(out, "receiving rate avg:"), Some(8120.0));
        assert_eq!(rate(out, "sending rate avg:"), Some(0.0));
        assert_eq!(rate("id: x, time 1.0 s", "sending rate avg:"), None);
    }
}
