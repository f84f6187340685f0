//! CPU time, read before and after each path from `/proc` (no `unsafe`:
//! the workspace forbids it): this process (every thread, those that ended
//! included), the web role's threads (the runtime named [`WEB_THREADS`]),
//! finished children (PerfTest's JVM, reaped), the PostgreSQL backends of
//! one database (`pg_stat_activity`, then `/proc/<pid>/stat` — they run on
//! this machine) and the RabbitMQ node (`os_pid` from the management API).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection};

/// The thread-name prefix of the web role's runtime (`main.rs` builds it).
pub(crate) const WEB_THREADS: &str = "hp-web";

/// `utime + stime` (and `cutime + cstime`) in clock ticks from a `stat` line.
fn stat_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    // After ')', field 3 (state) is index 0: utime 14, stime 15, cutime 16, cstime 17.
    Some((n(11)? + n(12)?, n(13)? + n(14)?))
}

fn ticks_of(path: &str) -> Option<(u64, u64)> {
    stat_ticks(&std::fs::read_to_string(path).ok()?)
}

/// The CPU time of the threads of this process whose name starts with `prefix`.
fn thread_ticks(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| ticks_of(&t.path().join("stat").display().to_string()))
        .map(|(own, _)| own)
        .sum()
}

/// One reading of every clock.
#[derive(Clone, Default)]
pub(crate) struct Reading {
    at: Option<Instant>,
    process: u64,
    children: u64,
    web: u64,
    backends: HashMap<i32, u64>,
    broker: Option<u64>,
}

/// Reads the clocks; knows the PostgreSQL server and the RabbitMQ node.
pub(crate) struct Clocks {
    tick: f64,
    admin: PgConnection,
    broker_pid: Option<u32>,
}

impl Clocks {
    /// `admin_url`: a database of the PostgreSQL server other than the
    /// measured ones (its own backend is never counted).
    pub(crate) async fn new(admin_url: &str) -> Self {
        let tick = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0);
        let admin = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
        Self {
            tick,
            admin,
            broker_pid: broker_pid().await,
        }
    }

    pub(crate) fn has_broker(&self) -> bool {
        self.broker_pid.is_some()
    }

    /// Reads every clock; the backends of `database` (a name) if given.
    pub(crate) async fn read(&mut self, database: Option<&str>) -> Reading {
        let mut backends = HashMap::new();
        if let Some(db) = database {
            let pids: Vec<i32> =
                sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
                    .bind(db)
                    .fetch_all(&mut self.admin)
                    .await
                    .unwrap_or_default();
            for pid in pids {
                if let Some((own, _)) = ticks_of(&format!("/proc/{pid}/stat")) {
                    backends.insert(pid, own);
                }
            }
        }
        let (process, children) = ticks_of("/proc/self/stat").unwrap_or_default();
        Reading {
            at: Some(Instant::now()),
            process,
            children,
            web: thread_ticks(WEB_THREADS),
            backends,
            broker: self
                .broker_pid
                .and_then(|pid| ticks_of(&format!("/proc/{pid}/stat")))
                .map(|(own, _)| own),
        }
    }

    /// CPU seconds between two readings.
    pub(crate) fn between(&self, before: &Reading, after: &Reading) -> Spent {
        let secs = |ticks: u64| ticks as f64 / self.tick;
        // A backend opened during the path counts from zero; one that ended is lost (pools keep theirs).
        let postgres: u64 = after
            .backends
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.backends.get(pid).copied().unwrap_or(0)))
            .sum();
        Spent {
            wall: match (before.at, after.at) {
                (Some(a), Some(b)) => b - a,
                _ => Duration::ZERO,
            },
            process: secs(after.process.saturating_sub(before.process)),
            children: secs(after.children.saturating_sub(before.children)),
            web: secs(after.web.saturating_sub(before.web)),
            postgres: (!after.backends.is_empty()).then(|| secs(postgres)),
            broker: before
                .broker
                .zip(after.broker)
                .map(|(a, b)| secs(b.saturating_sub(a))),
        }
    }
}

/// What a path spent: wall time and CPU seconds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Spent {
    pub(crate) wall: Duration,
    pub(crate) process: f64,
    pub(crate) children: f64,
    pub(crate) web: f64,
    pub(crate) postgres: Option<f64>,
    pub(crate) broker: Option<f64>,
}

impl Spent {
    /// For a path without the broker (the node is shared: what it spent was others').
    pub(crate) fn without_broker(self) -> Self {
        Self {
            broker: None,
            ..self
        }
    }
}

/// The RabbitMQ node's OS process, from the management API
/// (`EVENTFLOW_TEST_MANAGEMENT_URI`); `None` when it cannot be asked.
async fn broker_pid() -> Option<u32> {
    let uri = std::env::var("EVENTFLOW_TEST_MANAGEMENT_URI").ok()?;
    let (scheme, rest) = uri.split_once("://")?;
    let (auth, host) = rest.rsplit_once('@')?;
    let (user, pass) = auth.split_once(':')?;
    let base = format!("{scheme}://{host}");
    let http = reqwest::Client::new();
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .basic_auth(user, Some(pass))
            .send()
    };
    let overview: serde_json::Value = get("/api/overview".into()).await.ok()?.json().await.ok()?;
    let node = overview.get("node")?.as_str()?.to_owned();
    let info: serde_json::Value = get(format!("/api/nodes/{node}"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let pid = info.get("os_pid")?.as_str()?.parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}/stat"))
        .exists()
        .then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_own_and_children_ticks_even_with_an_odd_command_name() {
        let line = "42 (tokio (x) 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 9 0 1 0 0";
        assert_eq!(stat_ticks(line), Some((300, 10)));
        assert_eq!(stat_ticks("garbage"), None);
    }
}
