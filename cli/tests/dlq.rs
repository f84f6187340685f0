//! `kubectl eventflow dlq` as a user runs it, against the real API server,
//! an in-process operator and the real RabbitMQ (tier 2: `--include-ignored`,
//! needs `KUBECONFIG` and `EVENTFLOW_TEST_AMQP_URI`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    process::{Command, Output},
    time::Duration,
};

use eventflow_operator::{
    api::{DeadLetterRedrive, EventBroker, Stream},
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
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicNackOptions, BasicPublishOptions},
};
use serde_json::json;

fn env(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{var} is not set: run `eval \"$(e2e/cluster/services.sh env)\"; eval \"$(e2e/cluster/control-plane.sh env)\"` first")
        })
}

/// Runs the binary off the runtime's threads (the operator runs on them).
async fn cli(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_kubectl-eventflow"))
            .args(args)
            .output()
            .expect("kubectl-eventflow runs")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn install_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [Stream::crd(), EventBroker::crd(), DeadLetterRedrive::crd()] {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("eventflow-cli-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        eventually(&format!("CRD {name} established"), || async {
            let c = api.get(&name).await.ok()?;
            c.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and rabbitmq"]
async fn dlq_list_show_and_redrive_as_a_user_runs_them() {
    env("KUBECONFIG");
    let uri = env("EVENTFLOW_TEST_AMQP_URI");
    let client = Client::try_default().await.unwrap();
    install_crds(&client).await;
    let ns = format!("cli-dlq-{}", std::process::id());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "rabbit-uri"}, "stringData": {"uri": uri}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let broker: EventBroker = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "EventBroker", "metadata": {"name": "rabbit"},
        "spec": {"external": {"connectionSecret": {"name": "rabbit-uri"}}}
    }))
    .unwrap();
    Api::<EventBroker>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &broker)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(run(
        client.clone(),
        Config {
            namespace: Some(ns.clone()),
            lease: LeaseConfig::new(&ns, "eventflow-operator", "cli-test"),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            // The queue figures are read on every reconcile: soon after a DLQ fills.
            settings: Settings {
                resync: Duration::from_secs(2),
                ..Settings::default()
            },
        },
        async move {
            let _ = stopped.await;
        },
    ));

    let stream: Stream = serde_json::from_value(json!({
        "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream", "metadata": {"name": "shop"},
        "spec": {"broker": "rabbit", "apps": [
            {"name": "account", "image": "eventflow/account:0.1.0", "worker": {},
             "subscribes": [{"destination": "account", "backoffMs": 200}]}
        ]}
    }))
    .unwrap();
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    streams
        .create(&PostParams::default(), &stream)
        .await
        .unwrap();
    let dlq = format!("{ns}.account.account.dlq");
    eventually("the group's DLQ declared", || async {
        let s = streams.get("shop").await.ok()?;
        s.status?
            .destinations
            .iter()
            .any(|d| d.queues.contains(&dlq))
            .then_some(())
    })
    .await;

    // Three dead letters, rejected from the group queue as a worker does.
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for i in 0..3 {
        let id = format!("e-{i}");
        let body = json!({"specversion": "1.0", "id": id, "source": "/t", "type": "dev.eventflow.account.ACCOUNT_CREATED"});
        ch.basic_publish(
            format!("{ns}.account").as_str().into(),
            "account.ACCOUNT_CREATED".into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            BasicProperties::default().with_message_id(id.as_str().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let group = format!("{ns}.account.account");
    for _ in 0..3 {
        let got = eventually("a message in the group queue", || async {
            ch.basic_get(group.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .unwrap()
        })
        .await;
        ch.basic_nack(got.delivery.delivery_tag, BasicNackOptions::default())
            .await
            .unwrap();
    }

    // list: the group with its DLQ count, once the operator read the queues.
    let rows = eventually("dlq list shows the 3 dead letters", || async {
        let out = cli(&["dlq", "list", "shop", "-n", &ns, "-o", "json"]).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (rows[0]["deadLetters"] == 3).then_some(rows)
    })
    .await;
    assert_eq!(rows[0]["destination"], "account");
    assert_eq!(rows[0]["group"], "account");
    assert_eq!(rows[0]["deadLetterQueue"], dlq.as_str());

    // show: lists, moves nothing, leaves no DeadLetterRedrive behind.
    let out = cli(&[
        "dlq",
        "show",
        "shop",
        "account/account",
        "-n",
        &ns,
        "-o",
        "json",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e-0", "e-1", "e-2"]);
    assert_eq!(listed[0]["routingKey"], "account.ACCOUNT_CREATED");
    let redrives = Api::<DeadLetterRedrive>::namespaced(client.clone(), &ns);
    assert!(
        redrives
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // redrive --limit 2: prints what it did.
    let out = cli(&[
        "dlq",
        "redrive",
        "shop",
        "account/account",
        "-n",
        &ns,
        "--limit",
        "2",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("moved 2, skipped 0 (not selected), 1 left in the DLQ"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("DeadLetterRedrive shop-redrive-"),
        "{}",
        text(&out.stderr)
    );

    // A group the Stream does not have: exit 1 with the operator's reason.
    let out = cli(&[
        "dlq",
        "redrive",
        "shop",
        "account/nobody",
        "-n",
        &ns,
        "--all",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no consumer group nobody"),
        "{}",
        text(&out.stderr)
    );
    // A Stream that does not exist: exit 1 before anything is created.
    let out = cli(&[
        "dlq",
        "redrive",
        "gone",
        "account/account",
        "-n",
        &ns,
        "--all",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Stream gone does not exist"),
        "{}",
        text(&out.stderr)
    );

    // Teardown: the Stream (its finalizer deletes the topology), then what the operator made.
    let _ = conn.close(200, "bye".into()).await;
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
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), operator).await;
    Api::<Service>::namespaced(client.clone(), &ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
