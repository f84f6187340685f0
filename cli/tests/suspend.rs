//! `suspend`, `scale` and `resume` as a user runs them, against the real
//! kube-apiserver (KUBECONFIG) with the operator running in this process
//! on the real RabbitMQ. No kubelet: the Stream's Deployments have no
//! pods, so the drain is immediate and a resumed Stream never gets to
//! Running (which `resume --wait` reports as a failure).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, process::Output, time::Duration};

use eventflow_operator::{
    api::{AppRegistration, EventBroker, Stream},
    context::Settings,
    leader::LeaseConfig,
    run::{Config, run},
};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Namespace, Secret, Service},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

fn require_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: run `eval \"$(e2e/cluster/services.sh env)\"; eval \"$(e2e/cluster/control-plane.sh env)\"` first"
        ),
    }
}

async fn plugin(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-eventflow"))
            .args(&args)
            .output()
            .expect("kubectl-eventflow runs")
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

async fn eventually<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> Fut,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 60 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn replicas(client: &Client, ns: &str) -> BTreeMap<String, i32> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| {
            (
                d.metadata.name.unwrap(),
                d.spec.and_then(|s| s.replicas).unwrap(),
            )
        })
        .collect()
}

fn expected(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// CRDs, a fresh namespace with an external EventBroker `rabbit`.
async fn setup() -> (Client, String) {
    require_env("KUBECONFIG");
    let uri = require_env("EVENTFLOW_TEST_AMQP_URI");
    let client = Client::try_default().await.unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [Stream::crd(), EventBroker::crd(), AppRegistration::crd()] {
        crds.patch(
            &crd.metadata.name.clone().unwrap(),
            &PatchParams::apply("eventflow-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let ns = format!("cli-suspend-{:x}{:x}", std::process::id(), nanos);
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "rabbit-uri"}, "stringData": {"uri": uri}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let broker: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker",
        "metadata": {"name": "rabbit"},
        "spec": {"external": {"connectionSecret": {"name": "rabbit-uri"}}}
    }))
    .unwrap();
    let brokers = Api::<EventBroker>::namespaced(client.clone(), &ns);
    eventually("the EventBroker CRD serves", || async {
        brokers.create(&PostParams::default(), &broker).await.ok()
    })
    .await;
    (client, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn suspend_scale_and_resume_write_the_spec_and_report_what_the_operator_did() {
    let (client, ns) = setup().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config {
        namespace: Some(ns.clone()),
        lease: LeaseConfig::new(&ns, "eventflow-operator", &format!("test-{ns}")),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        settings: Settings::default(),
    };
    let operator = tokio::spawn(run(client.clone(), config, async move {
        let _ = stopped.await;
    }));
    let stream: Stream = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
        "metadata": {"name": "shop"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "account", "image": "eventflow/account:0.1.0", "web": {"replicas": 2}, "worker": {},
             "publishes": ["account"], "subscribes": [{"destination": "account"}]},
            {"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
             "subscribes": [{"destination": "account", "group": "audit"}]}
        ]}
    }))
    .unwrap();
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    streams
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    let running = expected(&[
        ("shop-account-web", 2),
        ("shop-account-worker", 1),
        ("shop-audit-worker", 1),
    ]);
    eventually("the Deployments", || async {
        (replicas(&client, &ns).await == running).then_some(())
    })
    .await;

    let out = plugin(&["suspend", "shop", "-n", &ns, "--wait", "--timeout", "60s"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("stream.eventflow.dev/shop suspended"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Drained: drained: 3 workload(s) scaled to zero"),
        "{stdout}"
    );
    assert!(replicas(&client, &ns).await.values().all(|r| *r == 0));
    let again = plugin(&["suspend", "shop", "-n", &ns]).await;
    assert!(text(&again).0.contains("already suspended"));

    let out = plugin(&["scale", "shop", "account/worker=4", "audit=0", "-n", &ns]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("scaled account/worker: 1 -> 4"), "{stdout}");
    assert!(stdout.contains("scaled audit/worker: 1 -> 0"), "{stdout}");
    assert!(stdout.contains("apply when it resumes"), "{stdout}");
    assert!(
        replicas(&client, &ns).await.values().all(|r| *r == 0),
        "still suspended"
    );
    for (args, says) in [
        (
            vec!["scale", "shop", "nope=1"],
            "no app nope in the Stream (apps: account, audit)",
        ),
        (
            vec!["scale", "shop", "account=1"],
            "say account/web or account/worker",
        ),
        (vec!["scale", "gone", "audit=1"], "Stream gone not found"),
        (vec!["suspend", "gone"], "Stream gone not found"),
    ] {
        let mut args = args.clone();
        args.extend(["-n", &ns]);
        let out = plugin(&args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out).1.contains(says), "{args:?}: {}", text(&out).1);
    }

    let out = plugin(&["resume", "shop", "-n", &ns]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("stream.eventflow.dev/shop resumed"),
        "{stdout}"
    );
    let resumed = expected(&[
        ("shop-account-web", 2),
        ("shop-account-worker", 4),
        ("shop-audit-worker", 0),
    ]);
    eventually("the replicas of the spec, as scaled meanwhile", || async {
        (replicas(&client, &ns).await == resumed).then_some(())
    })
    .await;
    let out = plugin(&["resume", "shop", "-n", &ns, "--wait", "--timeout", "3s"]).await;
    assert_eq!(out.status.code(), Some(1), "no kubelet: never Running");
    assert!(
        text(&out).1.contains("is not Running after 3 s"),
        "{}",
        text(&out).1
    );

    // Leave the server clean: the Stream (its finalizer needs the operator), then the rest.
    streams
        .delete("shop", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Stream deleted", || async {
        streams
            .get_opt("shop")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    for s in services.list(&ListParams::default()).await.unwrap() {
        let _ = services
            .delete(&s.metadata.name.unwrap(), &DeleteParams::default())
            .await;
    }
    let _ = Api::<Deployment>::namespaced(client.clone(), &ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
}
