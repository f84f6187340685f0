//! A broker user per app (tier 2: real kube-apiserver, real RabbitMQ with
//! the management plugin): the operator makes each app's user and Secret,
//! and RabbitMQ's own permission checks let the app do exactly what its
//! bindings need — publish to its destinations and its groups' retry
//! exchanges, consume its groups' queues — and refuse the rest: another
//! Stream's exchange, another group's queue, the default exchange,
//! declaring or deleting anything. Deleting the Secret rotates the
//! password; an app leaving the spec, and a deleted Stream, take their
//! users with them. Without a management API the apps share the connection
//! Secret's user and the Stream says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Operator, container, eventually};
use eventflow_operator::api::Stream;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions, QueuePurgeOptions,
    },
    types::FieldTable,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// Stream `a`: app `billing` publishes `orders` and consumes `payments`.
/// Stream `b`: app `shipping` publishes `shipments` and consumes `orders`.
fn two_streams() -> [Stream; 2] {
    let s = |name: &str, app: &str, publishes: &str, subscribes: &str| {
        serde_json::from_value(json!({
            "apiVersion": "eventflow.dev/v1alpha1", "kind": "Stream",
            "metadata": {"name": name},
            "spec": {"broker": "rabbit", "apps": [
                {"name": app, "image": format!("eventflow/{app}:0.1.0"), "worker": {},
                 "publishes": [publishes], "subscribes": [{"destination": subscribes}]},
                {"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
                 "subscribes": [{"destination": publishes, "group": format!("{name}-audit")}]}
            ]}
        }))
        .unwrap()
    };
    [
        s("a", "billing", "orders", "payments"),
        s("b", "shipping", "shipments", "orders"),
    ]
}

async fn secret_data(client: &Client, ns: &str, name: &str) -> Option<(String, String)> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?;
    let data = secret.data?;
    let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    Some((text("uri")?, secret.metadata.uid?))
}

/// The app's URI from its Secret, once the operator made it and its user.
async fn app_uri(client: &Client, ns: &str, secret: &str) -> String {
    eventually(
        WAIT,
        &format!("Secret {secret} and a working login"),
        || async {
            let (uri, _) = secret_data(client, ns, secret).await?;
            let c = Connection::connect(&uri, ConnectionProperties::default())
                .await
                .ok()?;
            let _ = c.close(200, "bye".into()).await;
            Some(uri)
        },
    )
    .await
}

/// What the broker answered: `Ok` or the AMQP reply code (403 = ACCESS_REFUSED).
type Answer = Result<(), u16>;

fn code(e: &lapin::Error) -> u16 {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id(),
        other => panic!("not a broker refusal: {other:?}"),
    }
}

async fn channel(uri: &str) -> (Connection, lapin::Channel) {
    let c = Connection::connect(uri, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (c, ch)
}

async fn publish(uri: &str, exchange: &str) -> Answer {
    let (c, ch) = channel(uri).await;
    let sent = async {
        ch.basic_publish(
            exchange.into(),
            "order.ORDER_CREATED".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await?
        .await
    }
    .await;
    let _ = c.close(200, "bye".into()).await;
    sent.map(|_| ()).map_err(|e| code(&e))
}

async fn consume(uri: &str, queue: &str) -> Answer {
    let (c, ch) = channel(uri).await;
    let r = ch
        .basic_consume(
            queue.into(),
            "users-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    let _ = c.close(200, "bye".into()).await;
    r.map(|_| ()).map_err(|e| code(&e))
}

async fn declare(uri: &str, queue: &str, passive: bool) -> Answer {
    let (c, ch) = channel(uri).await;
    let options = QueueDeclareOptions {
        durable: true,
        passive,
        ..Default::default()
    };
    let r = ch
        .queue_declare(queue.into(), options, FieldTable::default())
        .await;
    let _ = c.close(200, "bye".into()).await;
    r.map(|_| ()).map_err(|e| code(&e))
}

async fn delete(uri: &str, queue: &str) -> Answer {
    let (c, ch) = channel(uri).await;
    let r = ch
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = c.close(200, "bye".into()).await;
    r.map(|_| ()).map_err(|e| code(&e))
}

async fn purge(uri: &str, queue: &str) -> Answer {
    let (c, ch) = channel(uri).await;
    let r = ch
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await;
    let _ = c.close(200, "bye".into()).await;
    r.map(|_| ()).map_err(|e| code(&e))
}

/// Whether `uri` can log in at all.
async fn logs_in(uri: &str) -> bool {
    match Connection::connect(uri, ConnectionProperties::default()).await {
        Ok(c) => {
            let _ = c.close(200, "bye".into()).await;
            true
        }
        Err(_) => false,
    }
}

fn condition(stream: &Stream, type_: &str) -> Option<(String, String, String)> {
    let c = stream
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

async fn broker_users_condition(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
) -> (String, String) {
    let streams = Api::<Stream>::namespaced(client.clone(), ns);
    eventually(
        WAIT,
        &format!("BrokerUsers {status} on Stream {name}"),
        || async {
            let s = streams.get(name).await.ok()?;
            let (st, reason, message) = condition(&s, "BrokerUsers")?;
            (st == status).then_some((reason, message))
        },
    )
    .await
}

fn broker_secret_of(d: &Deployment) -> String {
    let c = container(d);
    let var = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "EVENTFLOW_BROKER_URI")
        .unwrap();
    var.value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap()
        .name
        .clone()
}

#[tokio::test]
#[ignore = "needs the control plane and rabbitmq with its management api"]
async fn each_app_may_do_exactly_what_its_bindings_need_on_the_real_broker() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "users").await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    common::with_management_api(&client, &ns).await;
    let operator = Operator::start(&client, &ns, common::test_settings()).await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    for s in two_streams() {
        streams.create(&PostParams::default(), &s).await.unwrap();
    }
    let (reason, message) = broker_users_condition(&client, &ns, "a", "True").await;
    assert_eq!(reason, "PerApp", "{message}");
    let billing = app_uri(&client, &ns, "a-billing-broker").await;
    let shipping = app_uri(&client, &ns, "b-shipping-broker").await;
    assert!(billing.contains(&format!("eventflow.{ns}.a.billing:")));
    // The workers are wired to their own Secrets, never the connection Secret.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let d = deployments.get("a-billing-worker").await.unwrap();
    assert_eq!(broker_secret_of(&d), "a-billing-broker");

    let n = |object: &str| format!("{ns}.{object}");
    // What billing's bindings need.
    assert_eq!(publish(&billing, &n("orders")).await, Ok(()));
    assert_eq!(
        publish(&billing, &n("payments.billing.retry")).await,
        Ok(())
    );
    assert_eq!(consume(&billing, &n("payments.billing")).await, Ok(()));
    assert_eq!(
        declare(&billing, &n("payments.billing"), true).await,
        Ok(())
    );
    // Nothing more: another Stream's exchange, another group's queue (of
    // the very destination billing publishes), the default exchange, its
    // own DLQ, and declaring, deleting or purging.
    assert_eq!(publish(&billing, &n("shipments")).await, Err(403));
    assert_eq!(consume(&billing, &n("orders.shipping")).await, Err(403));
    assert_eq!(consume(&billing, &n("orders.a-audit")).await, Err(403));
    assert_eq!(
        consume(&billing, &n("payments.billing.dlq")).await,
        Err(403)
    );
    assert_eq!(publish(&billing, "").await, Err(403));
    assert_eq!(
        declare(&billing, &n("payments.billing"), false).await,
        Err(403)
    );
    assert_eq!(delete(&billing, &n("payments.billing")).await, Err(403));
    assert_eq!(purge(&billing, &n("orders.shipping")).await, Err(403));
    // And the other way round.
    assert_eq!(consume(&shipping, &n("orders.shipping")).await, Ok(()));
    assert_eq!(publish(&shipping, &n("shipments")).await, Ok(()));
    assert_eq!(publish(&shipping, &n("orders")).await, Err(403));
    assert_eq!(consume(&shipping, &n("payments.billing")).await, Err(403));

    // Rotation: a deleted Secret comes back with a new password (and a
    // new uid on the pod template, which rolls the pods); the old one is refused.
    let (_, old_uid) = secret_data(&client, &ns, "a-billing-broker").await.unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .delete("a-billing-broker", &DeleteParams::default())
        .await
        .unwrap();
    let rotated = eventually(WAIT, "a new password for billing", || async {
        let (uri, uid) = secret_data(&client, &ns, "a-billing-broker").await?;
        (uid != old_uid && logs_in(&uri).await).then_some((uri, uid))
    })
    .await;
    assert_ne!(rotated.0, billing);
    assert!(!logs_in(&billing).await, "the old password is refused");
    eventually(
        WAIT,
        "the worker's template names the new Secret",
        || async {
            let d = deployments.get("a-billing-worker").await.ok()?;
            let meta = d.spec?.template.metadata?;
            (meta.annotations?.get("eventflow.dev/broker-credentials") == Some(&rotated.1))
                .then_some(())
        },
    )
    .await;

    // An app leaving the spec takes its user and Secret along.
    let without_billing = json!({"spec": {"apps": [
        {"name": "audit", "image": "eventflow/audit:0.1.0", "worker": {},
         "subscribes": [{"destination": "orders", "group": "a-audit"}]}
    ]}});
    streams
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(&without_billing),
        )
        .await
        .unwrap();
    eventually(WAIT, "billing's user and Secret gone", || async {
        let gone = secret_data(&client, &ns, "a-billing-broker")
            .await
            .is_none();
        (gone && !logs_in(&rotated.0).await).then_some(())
    })
    .await;
    assert!(logs_in(&shipping).await, "another Stream's user stays");

    // A deleted Stream takes its users along.
    streams.delete("b", &DeleteParams::default()).await.unwrap();
    eventually(WAIT, "shipping's user gone", || async {
        (!logs_in(&shipping).await).then_some(())
    })
    .await;
    common::teardown(&client, &ns).await;
    operator.stop().await;
}

#[tokio::test]
#[ignore = "needs the control plane and rabbitmq"]
async fn without_a_management_api_the_apps_share_the_connection_user_and_the_stream_says_so() {
    let (client, ns, operator) = common::operator_on_external_broker("users-shared").await;
    let streams = Api::<Stream>::namespaced(client.clone(), &ns);
    let [a, _] = two_streams();
    streams.create(&PostParams::default(), &a).await.unwrap();
    let (reason, message) = broker_users_condition(&client, &ns, "a", "False").await;
    assert_eq!(reason, "SharedUser");
    assert!(
        message.contains("rabbit-uri") && message.contains("managementUri"),
        "{message}"
    );
    let d = eventually(WAIT, "the billing worker", || async {
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt("a-billing-worker")
            .await
            .ok()?
    })
    .await;
    assert_eq!(broker_secret_of(&d), "rabbit-uri");
    assert!(
        secret_data(&client, &ns, "a-billing-broker")
            .await
            .is_none()
    );
    common::teardown(&client, &ns).await;
    operator.stop().await;
}

/// Benchmark (`make bench`; `make test` skips `_versus_`): what the users
/// step adds to a reconcile of a Stream of `APPS` apps — the first one
/// (Secrets created, users and permissions written) and a resync (nothing
/// to write: one `GET /api/users`, the Secrets read) — beside the same
/// Stream's topology declaration, the step every reconcile already had.
#[tokio::test]
#[ignore = "benchmark: needs the control plane and rabbitmq with its management api"]
async fn users_step_versus_topology_declaration() {
    use eventflow_operator::{
        build::build_stream, context::Context, metrics::Metrics, users, validate::validate,
    };
    use std::time::Instant;
    const APPS: usize = 10;
    const ROUNDS: u32 = 20;
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "users-bench").await;
    common::external_broker(&client, &ns, &common::amqp_uri()).await;
    common::with_management_api(&client, &ns).await;
    let (stream, wiring) = common::bench_stream(&client, &ns, APPS, false).await;
    let valid = validate(&stream).unwrap();
    let ctx = Context::new(
        client.clone(),
        "bench",
        Metrics::new(),
        common::test_settings(),
    );
    let uri = common::amqp_uri();
    let per_app = |d: std::time::Duration| d.as_secs_f64() * 1000.0 / APPS as f64;

    let t = Instant::now();
    let first = users::converge(&ctx, &valid, &wiring, &uri, "1")
        .await
        .unwrap();
    let cold = t.elapsed();
    assert!(
        matches!(
            first,
            users::Users::PerApp {
                written: Ok(()),
                ..
            }
        ),
        "{first:?}"
    );
    let t = Instant::now();
    for _ in 0..ROUNDS {
        users::converge(&ctx, &valid, &wiring, &uri, "1")
            .await
            .unwrap();
    }
    let warm = t.elapsed() / ROUNDS;
    let topology = build_stream(&valid, &wiring, &first).topology;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        ctx.amqp.declare(&uri, &topology).await.unwrap();
    }
    let declare = t.elapsed() / ROUNDS;
    println!("users step, Stream of {APPS} apps (per app):");
    println!(
        "  first reconcile (Secret created, user + permissions written): {:.2} ms",
        per_app(cold)
    );
    println!(
        "  resync (Secrets read, GET /api/users, nothing written):       {:.2} ms",
        per_app(warm)
    );
    println!(
        "  topology declaration of the same Stream, for scale:           {:.2} ms",
        per_app(declare)
    );
    println!(
        "  resync / declaration: {:.2}",
        warm.as_secs_f64() / declare.as_secs_f64()
    );
    users::remove_all(&ctx, &ns, "bench", &wiring, &uri)
        .await
        .unwrap();
    ctx.amqp.delete(&uri, &topology).await.unwrap();
    common::teardown(&client, &ns).await;
}
