//! Tier 2: two operator processes (the real binary) share one Lease: only
//! the leader reconciles and writes; when it stops, the other takes over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::eventually;
use eventflow_operator::api::Stream;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

/// A child operator process, terminated (SIGTERM, then SIGKILL) on drop.
struct Process {
    child: Child,
    admin: u16,
    /// The admin port, held while the process runs (see [`reserve_port`]).
    _admin_port: tokio::net::TcpSocket,
}

/// A loopback port bound with `SO_REUSEADDR` but never listening: unlike a
/// port found free and released, nothing (another bind, an outgoing
/// connection's ephemeral port) can take it before the child binds it, and
/// the child still can, since tokio's listeners set `SO_REUSEADDR` too.
fn reserve_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

impl Process {
    fn start(ns: &str, id: &str) -> Self {
        let (admin_port, admin) = reserve_port();
        let child = Command::new(env!("CARGO_BIN_EXE_eventflow-operator"))
            .env("EVENTFLOW_OPERATOR_NAMESPACE", ns)
            .env("EVENTFLOW_OPERATOR_LEASE_NAMESPACE", ns)
            .env("EVENTFLOW_OPERATOR_LEASE_NAME", "eventflow-operator")
            .env("EVENTFLOW_OPERATOR_ID", id)
            .env("EVENTFLOW_OPERATOR_LEASE_SECS", "6")
            .env(
                "EVENTFLOW_OPERATOR_ADMIN_ADDR",
                format!("127.0.0.1:{admin}"),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            admin,
            _admin_port: admin_port,
        }
    }

    /// SIGTERM: the graceful path that releases the Lease.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    async fn get(&self, path: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.admin))
            .await
            .ok()?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await.ok()?;
        Some(body)
    }

    async fn reconciles(&self) -> u64 {
        let text = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("eventflow_operator_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.terminate();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn only_the_leader_reconciles_and_the_standby_takes_over_when_it_stops() {
    let client = common::client().await;
    let uri = common::amqp_uri();
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "leader").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get_opt("eventflow-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };

    let mut a = Process::start(&ns, "operator-a");
    eventually(
        Duration::from_secs(30),
        "operator-a holds the Lease",
        || async { (holder().await.as_deref() == Some("operator-a")).then_some(()) },
    )
    .await;
    let b = Process::start(&ns, "operator-b");
    eventually(
        Duration::from_secs(30),
        "operator-b standing by",
        || async {
            b.get("/readyz")
                .await
                .filter(|r| r.contains("200 OK") && r.ends_with("standby"))
        },
    )
    .await;

    common::external_broker(&client, &ns, &uri).await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    streams
        .create(&PostParams::default(), &common::shop_stream("shop"))
        .await
        .unwrap();
    let fresh = |generation: i64| {
        let streams = streams.clone();
        async move {
            let s = streams.get("shop").await.ok()?;
            (s.metadata.generation == Some(generation)
                && s.status?.observed_generation == Some(generation))
            .then_some(())
        }
    };
    eventually(
        Duration::from_secs(30),
        "the leader reconciled generation 1",
        || fresh(1),
    )
    .await;
    assert!(a.reconciles().await > 0, "the leader reconciles");
    assert_eq!(
        b.reconciles().await,
        0,
        "the standby never reconciles, so never writes"
    );

    a.terminate();
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(20),
        "operator-b takes the Lease over",
        || async { (holder().await.as_deref() == Some("operator-b")).then_some(()) },
    )
    .await;
    println!("takeover after {:?}", started.elapsed());
    let patch = json!({"apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream", "spec": {"apps": [{"name": "account", "worker": {"replicas": 2}}]}});
    streams
        .patch(
            "shop",
            &PatchParams::apply("leader-test").force(),
            &Patch::Apply(&patch),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "the new leader reconciled generation 2",
        || fresh(2),
    )
    .await;
    assert!(b.reconciles().await > 0, "the new leader reconciles");

    // A leader that dies without releasing the Lease is replaced once it expires.
    let c = Process::start(&ns, "operator-c");
    eventually(
        Duration::from_secs(30),
        "operator-c standing by",
        || async { c.get("/readyz").await.filter(|r| r.ends_with("standby")) },
    )
    .await;
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    eventually(
        Duration::from_secs(30),
        "operator-c takes the expired Lease over",
        || async { (holder().await.as_deref() == Some("operator-c")).then_some(()) },
    )
    .await;
    assert_eq!(
        c.get("/readyz").await.map(|r| r.ends_with("leader")),
        Some(true)
    );
    common::teardown(&client, &ns).await;
}
