//! The broker link over TLS, against the private RabbitMQ's AMQPS listener
//! (`services.sh`: a certificate for IP 127.0.0.1 only, signed by a CA of
//! its own). An app given that CA (`EVENTFLOW_BROKER_CA`) connects, declares
//! its topology and moves a message, and the broker reports the connection
//! as TLS; a broker whose certificate another CA signed, or that is reached
//! by a name its certificate does not carry, is refused. The last test is
//! the benchmark of `make bench`: connection setup with and without TLS,
//! side by side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventflow_contract::{Bindings, bindings::SubscriptionRequest, tls};
use eventflow_runtime::{
    broker::{BrokerLink, Target},
    metrics::Metrics,
    testing::{amqp_uri, require_env, unique_namespace},
};
use lapin::{
    BasicProperties, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
};
use tokio_util::sync::CancellationToken;

fn amqps_uri() -> String {
    require_env("EVENTFLOW_TEST_AMQPS_URI")
}

/// The PEM file named by `var` (a path services.sh prints).
fn pem(var: &str) -> String {
    let path = require_env(var);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{var}={path}: {e}"))
}

fn broker_ca() -> String {
    pem("EVENTFLOW_TEST_BROKER_CA_FILE")
}

fn props(name: &str) -> ConnectionProperties {
    ConnectionProperties::default().with_connection_name(name.to_owned().into())
}

/// `"ssl"` of the broker's connection named `name`, from its management
/// API (connections appear there within its stats interval).
async fn broker_says_ssl(name: &str) -> bool {
    let api = reqwest::Url::parse(&require_env("EVENTFLOW_TEST_MANAGEMENT_URI")).unwrap();
    let (user, password) = (api.username().to_owned(), api.password().map(str::to_owned));
    let url = format!(
        "http://{}:{}/api/connections",
        api.host_str().unwrap(),
        api.port().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: serde_json::Value = reqwest::Client::new()
            .get(&url)
            .basic_auth(&user, password.as_deref())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_properties"]["connection_name"].as_str() == Some(name));
        if let Some(c) = found {
            return c["ssl"].as_bool().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the broker lists no connection named {name}: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
#[ignore = "needs the private rabbitmq"]
async fn an_app_reaches_the_broker_over_amqps_verifying_it_with_its_ca() {
    let request = SubscriptionRequest {
        destination: "things",
        group: "g",
        routing_keys: vec!["#".into()],
        max_attempts: 3,
        backoff_ms: 100,
    };
    let bindings = Bindings::standalone(&unique_namespace(), &["things"], &[request]);
    let name = format!("tls-test-{}", bindings.subscribes[0].queue);
    let target = Target {
        uri: amqps_uri(),
        ca: Some(broker_ca()),
        name: name.clone(),
        bindings: bindings.clone(),
        passive: false,
    };
    let (link, metrics, cancel) = (
        BrokerLink::new(),
        Metrics::default(),
        CancellationToken::new(),
    );
    let maintained = tokio::spawn({
        let (link, metrics, cancel) = (link.clone(), metrics.clone(), cancel.clone());
        async move { link.maintain(&target, &metrics, &cancel).await }
    });
    let connection = tokio::time::timeout(Duration::from_secs(30), link.connection(&cancel))
        .await
        .expect("no TLS connection within 30 s")
        .unwrap();
    // The link declared the topology over TLS; a message goes through it.
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
        .basic_publish(
            bindings.publishes[0].exchange.as_str().into(),
            "thing.MADE".into(),
            BasicPublishOptions::default(),
            b"over tls",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = channel
            .basic_get(
                bindings.subscribes[0].queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        if let Some(m) = got {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the message never reached its queue"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(got.delivery.data, b"over tls");
    assert!(
        broker_says_ssl(&name).await,
        "the broker must see the app's connection as TLS"
    );
    cancel.cancel();
    maintained.await.unwrap().unwrap();
}

#[tokio::test]
#[ignore = "needs the private rabbitmq"]
async fn a_broker_is_refused_unless_its_ca_signed_it_for_the_name_asked() {
    let uri = amqps_uri();
    // Signed by another CA: refused, and the error says why.
    let other = pem("EVENTFLOW_TEST_OTHER_CA_FILE");
    let e = tls::connect(&uri, Some(&other), props("tls-wrong-ca"))
        .await
        .map(|_| ())
        .expect_err("a certificate the given CA did not sign must be refused");
    let text = format!("{e}");
    assert!(
        text.contains("certificate"),
        "the error names the certificate: {text}"
    );
    // No CA given: the public roots alone do not know our CA either.
    assert!(
        tls::connect(&uri, None, props("tls-no-ca")).await.is_err(),
        "a private CA is trusted only when given"
    );
    // The right CA, but a name the certificate does not carry (it is for
    // 127.0.0.1 only): refused too, so the name is checked.
    let by_name = uri.replace("@127.0.0.1:", "@localhost:");
    assert_ne!(by_name, uri);
    let e = tls::connect(&by_name, Some(&broker_ca()), props("tls-wrong-name"))
        .await
        .map(|_| ())
        .expect_err("a certificate for another name must be refused");
    assert!(format!("{e}").contains("certificate"), "{e}");
    // And with both right, the same call connects.
    let ok = tls::connect(&uri, Some(&broker_ca()), props("tls-right"))
        .await
        .unwrap();
    ok.close(200, "done".into()).await.unwrap();
}

/// Connection setup (TCP, TLS handshake with verification, AMQP
/// handshake and login) to the same broker without and with TLS, one after
/// the other: `make bench` prints both and their ratio.
#[tokio::test]
#[ignore = "benchmark (make bench)"]
async fn connection_setup_tls_versus_plain() {
    const ROUNDS: usize = 40;
    async fn setup(uri: &str, ca: Option<&str>) -> Vec<Duration> {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let c = tls::connect(uri, ca, props("bench")).await.unwrap();
            times.push(started.elapsed());
            c.close(200, "bench".into()).await.unwrap();
        }
        times.sort();
        times
    }
    let (plain_uri, tls_uri, ca) = (amqp_uri(), amqps_uri(), broker_ca());
    // Warm both paths (DNS-free, but the first TLS config build loads roots).
    setup(&plain_uri, None).await;
    setup(&tls_uri, Some(&ca)).await;
    let plain = setup(&plain_uri, None).await;
    let secure = setup(&tls_uri, Some(&ca)).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = |t: &[Duration]| t.iter().map(|d| ms(*d)).sum::<f64>() / t.len() as f64;
    let pct = |t: &[Duration], p: f64| ms(t[((t.len() - 1) as f64 * p).round() as usize]);
    println!("connection setup to the private RabbitMQ, {ROUNDS} sequential connections each");
    println!(
        "{:<10} {:>9} {:>9} {:>9}",
        "", "mean ms", "p50 ms", "p99 ms"
    );
    for (what, t) in [("amqp", &plain), ("amqps", &secure)] {
        println!(
            "{what:<10} {:>9.2} {:>9.2} {:>9.2}",
            mean(t),
            pct(t, 0.5),
            pct(t, 0.99)
        );
    }
    println!(
        "TLS / plain: {:.2}x mean, {:.2}x p50",
        mean(&secure) / mean(&plain),
        pct(&secure, 0.5) / pct(&plain, 0.5)
    );
}
