//! Test helpers for apps built on the runtime (feature `testing`): the
//! private services' addresses (a test whose service is missing fails
//! loudly, never passes silently), isolated stores and broker namespaces,
//! and app processes that are killed when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::{Connection, postgres::PgConnection};

pub const AMQP_VAR: &str = "EVENTFLOW_TEST_AMQP_URI";
pub const DATABASE_VAR: &str = "EVENTFLOW_TEST_DATABASE_URL";

/// The value of a service variable, or a panic that says how to get it.
pub fn require_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs the private services. Run `eval \"$(e2e/cluster/services.sh env)\"` \
             after `e2e/cluster/services.sh up` (make test does both)"
        ),
    }
}

pub fn amqp_uri() -> String {
    require_env(AMQP_VAR)
}

/// A unique name prefix for broker objects, so parallel tests never share queues.
pub fn unique_namespace() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A fresh, empty PostgreSQL database on the test server.
pub async fn fresh_postgres() -> String {
    let url = require_env(DATABASE_VAR);
    let name = format!("eftest_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, _) = url.rsplit_once('/').expect("database URL ends with /<db>");
    format!("{base}/{name}")
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("eventflow-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh SQLite store URL.
pub fn fresh_sqlite() -> String {
    format!(
        "sqlite://{}?mode=rwc",
        temp_dir().join("store.db").display()
    )
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An app process (one role); killed on drop.
pub struct AppProcess {
    pub child: Child,
    pub http: String,
    pub admin: String,
    pub log: PathBuf,
}

impl AppProcess {
    /// Starts `binary role` with `env` plus fresh HTTP/admin ports (and its
    /// own URL as `EVENTFLOW_SELF_URL` unless `env` sets it); logs go to a file.
    pub fn spawn(binary: &str, role: &str, env: &[(&str, String)]) -> Self {
        Self::spawn_at(binary, role, env, free_port(), free_port())
    }

    /// [`AppProcess::spawn`] on given ports (a restart that keeps its URL).
    pub fn spawn_at(
        binary: &str,
        role: &str,
        env: &[(&str, String)],
        http_port: u16,
        admin_port: u16,
    ) -> Self {
        let log = temp_dir().join(format!("{role}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("EVENTFLOW_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("EVENTFLOW_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env(
                "EVENTFLOW_SELF_URL",
                format!("http://127.0.0.1:{http_port}"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        Self {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            log,
        }
    }

    /// Waits until `/readyz` answers 200; panics with the log otherwise.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        let client = reqwest::Client::new();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before ready:\n{}",
                    self.http,
                    self.log_text()
                );
            }
            if let Ok(r) = client.get(format!("{}/readyz", self.admin)).send().await
                && r.status().is_success()
            {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("not ready after {timeout:?}:\n{}", self.log_text());
    }

    /// Waits until `/livez` answers 200.
    pub async fn wait_live(&mut self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(r) = reqwest::get(format!("{}/livez", self.admin)).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("not live after {timeout:?}:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a graceful exit (SIGKILL after `grace`).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }

    /// Resident memory of the process in KiB (Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
