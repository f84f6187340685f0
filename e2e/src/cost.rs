//! What a load run costs, per component of the example system (`make
//! measure`): CPU time read on the node itself — each pod's cgroup
//! (`cpuacct.usage`, or `cpu.stat` on cgroup v2), the cluster's own
//! processes (`/proc/<pid>/stat` of etcd, the API server, containerd,
//! kubelet... and the containerd shims) and the node's `/proc/stat` — before
//! and after the run. This measuring process runs on the node, as the
//! cluster of `e2e/cluster/cluster.sh` does.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use crate::OPERATOR_NS;

pub mod counts;
pub mod table;

/// A component's name for the processes of the cluster itself.
pub const PLATFORM: &str = "platform (Kubernetes, containerd)";
/// The load simulator: the client of the run, not a cost of the system.
pub const CLIENT: &str = "load simulator (client)";

/// CPU time per component at one instant.
#[derive(Clone, Debug, Default)]
pub struct CpuSample {
    /// Nanoseconds of CPU by component, with the pods counted in it.
    pub components: BTreeMap<String, (u64, usize)>,
    /// The node's busy and total time (`/proc/stat`, in clock ticks).
    pub node_busy: u64,
    pub node_total: u64,
    /// This measuring process's own CPU (nanoseconds).
    pub measurer: u64,
    pub at: Option<Instant>,
}

/// The component a pod belongs to: an app role (`order worker`), the
/// broker, PostgreSQL, the operator, the load simulator, the platform
/// (kube-system); `None` for pods of no interest.
pub fn component_of(pod: &Pod) -> String {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).map(String::as_str);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(role) = label("eventflow.dev/role") {
        let app = label("eventflow.dev/app").unwrap_or_default();
        if label("eventflow.dev/runtime") == Some("spring-cloud-stream") {
            let stream = label("eventflow.dev/stream").unwrap_or_default();
            return format!("Spring {stream}/{app} {role}");
        }
        if app == "load-simulator" {
            return CLIENT.into();
        }
        return format!("{app} {role}");
    }
    if label("eventflow.dev/broker").is_some() {
        return "RabbitMQ".into();
    }
    if label("app.kubernetes.io/name") == Some("postgres") {
        return "PostgreSQL".into();
    }
    if label("app.kubernetes.io/name") == Some("eventflow-dashboard") {
        return "dashboard".into();
    }
    if namespace == OPERATOR_NS {
        return "operator".into();
    }
    if namespace == "kube-system" || namespace == "local-path-storage" {
        return PLATFORM.into();
    }
    format!("other ({namespace})")
}

/// The directory of the cluster's state (its PID files under `pids/`): the
/// directory of the `KUBECONFIG` that `cluster.sh env` exports.
fn cluster_state() -> Result<PathBuf> {
    let kubeconfig = std::env::var("KUBECONFIG")
        .context("KUBECONFIG is not set: eval \"$(e2e/cluster/cluster.sh env)\"")?;
    let dir = Path::new(&kubeconfig)
        .parent()
        .ok_or_else(|| anyhow!("KUBECONFIG {kubeconfig} has no directory"))?;
    let pids = dir.join("pids");
    if !pids.is_dir() {
        bail!(
            "{} is missing: the CPU table reads the processes of the cluster of \
             e2e/cluster/cluster.sh, on this machine",
            pids.display()
        );
    }
    Ok(dir.to_owned())
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process, in clock ticks (`None` once it is gone).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The PIDs of the cluster's processes: the PID files of `cluster.sh` and
/// the containerd shims serving its socket.
fn platform_pids(state: &Path) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(state.join("pids"))? {
        let path = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse()
        {
            pids.push(pid);
        }
    }
    let socket_dir = "/run/eventflow-e2e/containerd";
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let exe = cmdline.split(' ').next().unwrap_or_default();
        if exe.ends_with("containerd-shim-runc-v2") && cmdline.contains(socket_dir) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// A pod's CPU so far, from its cgroup (v1 `cpuacct`, else v2).
fn pod_cpu_ns(pod: &Pod) -> Result<u64> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let qos = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .unwrap_or("BestEffort");
    let parent = match qos {
        "Guaranteed" => String::new(),
        other => format!("{}/", other.to_lowercase()),
    };
    let v1 = format!("/sys/fs/cgroup/cpuacct/kubepods/{parent}pod{uid}/cpuacct.usage");
    if let Ok(text) = std::fs::read_to_string(&v1) {
        return text
            .trim()
            .parse()
            .with_context(|| format!("{v1}: {text:?}"));
    }
    let v2 = format!("/sys/fs/cgroup/kubepods/{parent}pod{uid}/cpu.stat");
    if let Ok(text) = std::fs::read_to_string(&v2) {
        let usec: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .ok_or_else(|| anyhow!("{v2} has no usage_usec"))?
            .trim()
            .parse()?;
        return Ok(usec * 1000);
    }
    bail!("no cgroup of pod {uid} at {v1} or {v2}: is this the cluster's node?")
}

/// The node's busy and total CPU time (`/proc/stat`'s first line, ticks).
fn node_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// The CPU of every component now.
pub async fn sample(client: &Client) -> Result<CpuSample> {
    let state = cluster_state()?;
    let tick_ns = 1_000_000_000 / clock_ticks_per_second();
    let mut s = CpuSample {
        at: Some(Instant::now()),
        ..CpuSample::default()
    };
    let pods = Api::<Pod>::all(client.clone())
        .list(&Default::default())
        .await?;
    for pod in &pods.items {
        if pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running") {
            continue;
        }
        let Ok(ns) = pod_cpu_ns(pod) else {
            // Gone between the listing and the read.
            continue;
        };
        let entry = s.components.entry(component_of(pod)).or_default();
        entry.0 += ns;
        entry.1 += 1;
    }
    let platform: u64 = platform_pids(&state)?
        .into_iter()
        .filter_map(process_ticks)
        .sum();
    s.components.entry(PLATFORM.into()).or_default().0 += platform * tick_ns;
    s.measurer = process_ticks(std::process::id()).unwrap_or(0) * tick_ns;
    (s.node_busy, s.node_total) = node_ticks()?;
    Ok(s)
}

/// The CPU spent between two samples, per component (seconds), with the
/// node's busy share; components whose pods restarted count from zero.
#[derive(Clone, Debug, Default)]
pub struct CpuSpent {
    pub seconds: f64,
    pub components: BTreeMap<String, (f64, usize)>,
    /// Cores busy on average over the interval (all processes of the node).
    pub node_busy_cores: f64,
    pub cores: f64,
    pub measurer: f64,
}

pub fn spent(before: &CpuSample, after: &CpuSample) -> CpuSpent {
    let seconds = match (before.at, after.at) {
        (Some(b), Some(a)) => a.duration_since(b).as_secs_f64(),
        _ => 0.0,
    };
    let components = after
        .components
        .iter()
        .map(|(name, (ns, pods))| {
            let was = before.components.get(name).map_or(0, |(ns, _)| *ns);
            let delta = ns.saturating_sub(was) as f64 / 1e9;
            (name.clone(), (delta, *pods))
        })
        .collect();
    let total = after.node_total.saturating_sub(before.node_total) as f64;
    let busy = after.node_busy.saturating_sub(before.node_busy) as f64;
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    CpuSpent {
        seconds,
        components,
        node_busy_cores: if total > 0.0 {
            busy / total * cores
        } else {
            0.0
        },
        cores,
        measurer: after.measurer.saturating_sub(before.measurer) as f64 / 1e9,
    }
}
