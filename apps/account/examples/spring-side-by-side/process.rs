//! The processes of the run other than ours (`Proc`: spawn, readiness, exit,
//! killed on drop) and each side's process figures (start -> ready, RSS).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use eventflow_runtime::testing::{Ports, temp_dir};

use crate::{READY_TIMEOUT, pieces::Amqp};

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:` now, `VmHWM:` the peak).
pub(crate) fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process of this run other than ours (a JVM, PerfTest); killed on drop,
/// so also when the run fails.
pub(crate) struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    pub(crate) http: String,
    admin: String,
    _ports: Ports,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, program: &str, args: &[String], ports: Ports) -> Self {
        let log = temp_dir().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        Self {
            name,
            child,
            log,
            http: format!("http://{}", ports.http()),
            admin: format!("http://{}", ports.admin()),
            _ports: ports,
        }
    }

    /// A Spring Boot fat jar on reserved server and management ports.
    pub(crate) fn spring(
        name: &'static str,
        jar: &Path,
        amqp: &Amqp,
        properties: &[String],
    ) -> Self {
        let ports = Ports::reserve();
        let mut args: Vec<String> = std::env::var("SPRING_JAVA_OPTS")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        args.extend([
            "-Djava.net.preferIPv4Stack=true".to_owned(),
            "-jar".to_owned(),
            jar.display().to_string(),
            format!("--server.port={}", ports.http().port()),
            format!("--management.server.port={}", ports.admin().port()),
            format!("--spring.rabbitmq.host={}", amqp.host),
            format!("--spring.rabbitmq.port={}", amqp.port),
            format!("--spring.rabbitmq.username={}", amqp.user),
            format!("--spring.rabbitmq.password={}", amqp.pass),
            format!("--spring.rabbitmq.virtual-host={}", amqp.vhost),
        ]);
        args.extend(properties.iter().cloned());
        Self::spawn(name, "java", &args, ports)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Spawn -> `/actuator/health/readiness` answers 200; panics with the log otherwise.
    pub(crate) async fn wait_ready(&mut self, since: Instant) -> Duration {
        let client = reqwest::Client::new();
        let url = format!("{}/actuator/health/readiness", self.admin);
        while since.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before ready:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return since.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{} not ready after {READY_TIMEOUT:?}:\n{}",
            self.name,
            self.log_text()
        );
    }

    /// Waits for the process to exit by itself (PerfTest), killing it after `timeout`.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} failed with {status}:\n{}",
                    self.name,
                    self.log_text()
                );
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{} still running after {timeout:?}:\n{}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Figures of one side's process.
pub(crate) struct Figures {
    pub(crate) ready: Duration,
    pub(crate) idle_kib: u64,
    pub(crate) loaded_kib: u64,
}

/// Idle RSS a second after ready (the process settles).
pub(crate) async fn idle_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_secs(1)).await;
    status_kib(pid, "VmRSS:").unwrap_or(0)
}
