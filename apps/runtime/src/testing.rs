//! Test helpers for apps built on the runtime (feature `testing`): the
//! private services' addresses (a test whose service is missing fails
//! loudly, never passes silently), isolated stores and broker namespaces,
//! loopback ports reserved for the test, and app processes that are killed
//! when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::net::TcpSocket;

use sqlx::{Connection, postgres::PgConnection};

pub const AMQP_VAR: &str = "EVENTFLOW_TEST_AMQP_URI";
pub const DATABASE_VAR: &str = "EVENTFLOW_TEST_DATABASE_URL";
/// The broker only fault tests use: they stop and start it.
pub const FAULT_AMQP_VAR: &str = "EVENTFLOW_TEST_FAULT_AMQP_URI";
/// The fault-test PostgreSQL: a server of its own that [`StoreOutage`]
/// stops and starts, never the shared one.
pub const FAULT_DATABASE_VAR: &str = "EVENTFLOW_TEST_FAULT_DATABASE_URL";

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

/// The fault broker's URI ([`fault_broker`] stops and starts it).
pub fn fault_amqp_uri() -> String {
    require_env(FAULT_AMQP_VAR)
}

/// Held by a test for as long as it stops and starts the fault broker: the
/// tests of one binary run in parallel, and one test's broker restart must
/// not land in the middle of another's.
pub static FAULT_BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `e2e/cluster/services.sh fault-broker <action>` (`stop`: the node shuts
/// down and closes its connections; `start`: it starts again on its data
/// and returns once it listens). Panics when the script fails.
pub fn fault_broker(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../e2e/cluster/services.sh");
    let out = Command::new(script)
        .args(["fault-broker", action])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        out.status.success(),
        "services.sh fault-broker {action} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A unique name prefix for broker objects, so parallel tests never share queues.
pub fn unique_namespace() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A fresh, empty PostgreSQL database on the test server.
pub async fn fresh_postgres() -> String {
    fresh_database(&require_env(DATABASE_VAR)).await
}

/// A fresh, empty PostgreSQL database on the fault-test server (see
/// [`StoreOutage`]).
pub async fn fresh_fault_postgres() -> String {
    fresh_database(&require_env(FAULT_DATABASE_VAR)).await
}

/// An outage of the fault-test PostgreSQL: stopped (fast shutdown, clients
/// disconnected) by [`StoreOutage::begin`], started again by
/// [`StoreOutage::end`] — or when dropped, so a failing test never leaves it
/// down. Through `e2e/cluster/services.sh fault-postgres stop|start`. Tests
/// that use it must not run at the same time (one server).
pub struct StoreOutage {
    ended: bool,
}

impl StoreOutage {
    pub fn begin() -> Self {
        require_env(FAULT_DATABASE_VAR);
        fault_postgres("stop");
        Self { ended: false }
    }

    pub fn end(mut self) {
        self.ended = true;
        fault_postgres("start");
    }
}

impl Drop for StoreOutage {
    fn drop(&mut self) {
        if !self.ended {
            fault_postgres("start");
        }
    }
}

fn fault_postgres(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../e2e/cluster/services.sh");
    let status = Command::new(script)
        .args(["fault-postgres", action])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        status.success(),
        "{script} fault-postgres {action}: {status}"
    );
}

async fn fresh_database(url: &str) -> String {
    let name = format!("eftest_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(url)
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

/// A loopback port held by the test until dropped: bound, with
/// `SO_REUSEADDR`, but never listening. A port merely found free and
/// released could be taken before the process handed it binds it (by an
/// outgoing connection's ephemeral port or another test); a held port
/// cannot: the kernel gives neither a port-0 bind nor an outgoing
/// connection a port a socket is bound to, and refuses any other bind
/// while a process listens on it. The process it is handed to can still
/// bind and listen on it, because Linux lets sockets that all set
/// `SO_REUSEADDR` share a port while at most one listens, and tokio's
/// (mio's) listeners set it. While nobody listens, connections to it are
/// refused, as to a stopped process; and a restarted process gets the
/// same port.
pub struct ReservedPort {
    _socket: TcpSocket,
    addr: SocketAddr,
}

impl ReservedPort {
    pub fn new() -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        Self {
            _socket: socket,
            addr,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// The HTTP and admin ports of an app process, reserved as long as a clone
/// lives: a process started again on them ([`AppProcess::spawn_on`]) keeps
/// its URLs.
#[derive(Clone)]
pub struct Ports(Arc<(ReservedPort, ReservedPort)>);

impl Ports {
    pub fn reserve() -> Self {
        Self(Arc::new((ReservedPort::new(), ReservedPort::new())))
    }

    pub fn http(&self) -> SocketAddr {
        self.0.0.addr()
    }

    pub fn admin(&self) -> SocketAddr {
        self.0.1.addr()
    }
}

/// An app process (one role); killed on drop.
pub struct AppProcess {
    pub child: Child,
    pub http: String,
    pub admin: String,
    pub log: PathBuf,
    /// Held while the process runs, so nothing else takes its ports.
    _ports: Ports,
}

impl AppProcess {
    /// Starts `binary role` with `env` plus freshly reserved HTTP/admin ports
    /// (and its own URL as `EVENTFLOW_SELF_URL` unless `env` sets it); logs
    /// go to a file.
    pub fn spawn(binary: &str, role: &str, env: &[(&str, String)]) -> Self {
        Self::spawn_on(binary, role, env, &Ports::reserve())
    }

    /// [`AppProcess::spawn`] on `ports` (a restart that keeps its URLs).
    pub fn spawn_on(binary: &str, role: &str, env: &[(&str, String)], ports: &Ports) -> Self {
        let (http, admin) = (ports.http(), ports.admin());
        let log = temp_dir().join(format!("{role}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("EVENTFLOW_HTTP_ADDR", http.to_string())
            .env("EVENTFLOW_ADMIN_ADDR", admin.to_string())
            .env("EVENTFLOW_SELF_URL", format!("http://{http}"))
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
            http: format!("http://{http}"),
            admin: format!("http://{admin}"),
            log,
            _ports: ports.clone(),
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

    /// A counter or gauge from the process's `/metrics`: the value of the
    /// first line starting with `line_prefix` (0 when absent).
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
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

#[cfg(test)]
mod tests {
    use std::{io::ErrorKind, net::TcpStream};

    use super::*;

    #[test]
    fn a_reserved_port_refuses_connections_and_other_binds_yet_its_process_can_listen_on_it_again()
    {
        let reserved = ReservedPort::new();
        let refused = TcpStream::connect(reserved.addr()).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
        for _ in 0..2 {
            // What a spawned process does; std, like tokio, sets SO_REUSEADDR.
            let listener = std::net::TcpListener::bind(reserved.addr()).unwrap();
            TcpStream::connect(reserved.addr()).unwrap();
            let taken = std::net::TcpListener::bind(reserved.addr()).unwrap_err();
            assert_eq!(taken.kind(), ErrorKind::AddrInUse);
            drop(listener);
        }
        let others: Vec<_> = (0..200).map(|_| ReservedPort::new().port()).collect();
        assert!(!others.contains(&reserved.port()));
    }
}
