//! Pure rendering tests: YAML fixtures in, the objects a user would see out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use eventflow_contract::{Bindings, QueueType};
use eventflow_operator::{
    api::{EventBroker, Stream},
    build::{StreamObjects, build_broker, build_stream, stream::CREDENTIALS_ANNOTATION},
    connection::{BrokerSecret, broker_wiring},
    users::{AppCredentials, Users},
    validate::validate,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Container, PodSpec},
};
use serde_json::json;

/// The crate's directory, read when the test runs: a target directory shared
/// between clones may hold a binary built in another checkout.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/valid/{name}", manifest_dir());
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn shop() -> StreamObjects {
    shop_with(&Users::Shared("no management API".into()))
}

fn shop_with(users: &Users) -> StreamObjects {
    let stream: Stream = fixture("stream-shop.yaml");
    let broker: EventBroker = fixture("broker-external.yaml");
    let wiring = broker_wiring(&broker);
    build_stream(&validate(&stream).unwrap(), &wiring, users)
}

fn deployment<'a>(objects: &'a StreamObjects, name: &str) -> &'a Deployment {
    objects
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap()
}

fn pod(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn container(d: &Deployment) -> &Container {
    &pod(d).containers[0]
}

fn env(c: &Container) -> BTreeMap<String, serde_json::Value> {
    c.env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| (e.name.clone(), serde_json::to_value(e).unwrap()))
        .collect()
}

fn value(c: &Container, name: &str) -> String {
    env(c)[name]["value"].as_str().unwrap().to_owned()
}

#[test]
fn separate_packaging_gives_each_role_its_own_deployment_and_combined_gives_one_running_all() {
    let objects = shop();
    let names: Vec<_> = objects
        .deployments
        .iter()
        .map(|d| d.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "shop-account-web",
            "shop-account-worker",
            "shop-order-web",
            "shop-order-worker",
            "shop-audit"
        ]
    );
    let services: Vec<_> = objects
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        services,
        ["shop-account-web", "shop-order-web", "shop-audit"]
    );

    let replicas = |n: &str| deployment(&objects, n).spec.as_ref().unwrap().replicas;
    assert_eq!(replicas("shop-account-web"), Some(2));
    assert_eq!(replicas("shop-account-worker"), Some(3));
    assert_eq!(
        replicas("shop-audit"),
        Some(2),
        "Combined runs the web replicas"
    );
    assert_eq!(
        value(
            container(deployment(&objects, "shop-audit")),
            "EVENTFLOW_ROLE"
        ),
        "all"
    );
    assert_eq!(
        container(deployment(&objects, "shop-order-web"))
            .image
            .as_deref(),
        Some("eventflow/order-web:0.1.0")
    );
    assert_eq!(
        container(deployment(&objects, "shop-order-worker"))
            .image
            .as_deref(),
        Some("eventflow/order-worker:0.1.0")
    );
}

#[test]
fn every_container_gets_the_whole_wiring_contract() {
    let objects = shop();
    let c = container(deployment(&objects, "shop-account-worker"));
    let e = env(c);
    assert_eq!(value(c, "EVENTFLOW_ROLE"), "worker");
    assert_eq!(value(c, "EVENTFLOW_APP"), "account");
    assert_eq!(value(c, "EVENTFLOW_STREAM"), "shop");
    assert_eq!(
        e["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        e["EVENTFLOW_BROKER_URI"]["valueFrom"]["secretKeyRef"]["name"],
        "rabbit-uri"
    );
    assert_eq!(
        e["EVENTFLOW_BROKER_URI"]["valueFrom"]["secretKeyRef"]["key"],
        "amqp"
    );
    assert!(
        e["EVENTFLOW_BROKER_URI"].get("value").is_none(),
        "the URI is never a literal"
    );
    assert_eq!(
        value(c, "EVENTFLOW_SELF_URL"),
        "http://shop-account-web.demo.svc:8080"
    );
    assert_eq!(
        value(c, "EVENTFLOW_PEER_ACCOUNT_URL"),
        "http://shop-account-web.demo.svc:8080"
    );
    assert_eq!(
        value(c, "EVENTFLOW_PEER_ORDER_URL"),
        "http://shop-order-web.demo.svc:8081"
    );
    assert_eq!(
        value(c, "EVENTFLOW_PEER_AUDIT_URL"),
        "http://shop-audit.demo.svc:8080"
    );
    assert_eq!(value(c, "EVENTFLOW_HTTP_ADDR"), "0.0.0.0:8080");
    assert_eq!(value(c, "EVENTFLOW_ADMIN_ADDR"), "0.0.0.0:9090");
    assert_eq!(value(c, "EVENTFLOW_DATA_DIR"), "/var/lib/eventflow");
    assert_eq!(value(c, "EVENTFLOW_PREFETCH"), "20");
    assert_eq!(value(c, "EVENTFLOW_CONCURRENCY"), "8");
    assert_eq!(value(c, "RUST_LOG"), "info", "user env is kept");

    let bindings = Bindings::from_json(&value(c, "EVENTFLOW_BINDINGS")).unwrap();
    assert_eq!(bindings.publishes[0].exchange, "demo.account");
    let sub = &bindings.subscribes[0];
    assert_eq!(sub.queue, "demo.account.account");
    assert_eq!(sub.retry_queue, "demo.account.account.retry");
    assert_eq!(sub.dead_letter_queue, "demo.account.account.dlq");
    assert_eq!(
        sub.routing_keys,
        ["account.ACCOUNT_CREATED", "account.ACCOUNT_CONFIRMED"]
    );
    assert_eq!((sub.max_attempts, sub.backoff_ms), (3, 500));
    assert_eq!(sub.queue_type, QueueType::Classic);

    let web = container(deployment(&objects, "shop-order-web"));
    assert_eq!(value(web, "EVENTFLOW_HTTP_ADDR"), "0.0.0.0:8081");
    assert!(
        !env(web).contains_key("EVENTFLOW_PREFETCH"),
        "a web role has no consumer settings"
    );
}

#[test]
fn an_app_with_its_own_broker_user_reads_its_own_secret_and_rolls_when_it_is_replaced() {
    let own = AppCredentials {
        secret: BrokerSecret {
            name: "shop-account-broker".into(),
            key: "uri".into(),
        },
        revision: "uid-1".into(),
    };
    let users = Users::PerApp {
        apps: BTreeMap::from([("account".to_owned(), own)]),
        written: Ok(()),
    };
    let objects = shop_with(&users);
    for name in ["shop-account-web", "shop-account-worker"] {
        let d = deployment(&objects, name);
        let e = env(container(d));
        assert_eq!(
            e["EVENTFLOW_BROKER_URI"]["valueFrom"]["secretKeyRef"]["name"],
            "shop-account-broker"
        );
        assert_eq!(
            e["EVENTFLOW_BROKER_URI"]["valueFrom"]["secretKeyRef"]["key"],
            "uri"
        );
        // The CA of a TLS broker comes from the same Secret, when it has one.
        let ca = &e["EVENTFLOW_BROKER_CA"]["valueFrom"]["secretKeyRef"];
        assert_eq!(
            (&ca["name"], &ca["key"], &ca["optional"]),
            (
                &json!("shop-account-broker"),
                &json!("ca.crt"),
                &json!(true)
            )
        );
        let template = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
        assert_eq!(
            template.annotations.as_ref().unwrap()[CREDENTIALS_ANNOTATION],
            "uid-1"
        );
    }
    // An app without a user of its own keeps the connection Secret, unannotated.
    let order = deployment(&objects, "shop-order-worker");
    assert_eq!(
        env(container(order))["EVENTFLOW_BROKER_URI"]["valueFrom"]["secretKeyRef"]["name"],
        "rabbit-uri"
    );
    let template = order
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert!(template.annotations.is_none());
}

#[test]
fn the_stream_topology_declares_every_group_queue_with_retry_and_dead_letter() {
    let objects = shop();
    let queues: Vec<_> = objects.topology.queue_names().collect();
    assert!(queues.contains(&"demo.account.order-accounts"));
    assert!(queues.contains(&"demo.order.audit.dlq"));
    assert!(queues.contains(&"demo.order.order.retry"));
    assert_eq!(queues.len(), 4 * 3, "4 groups x (queue, retry, dlq)");
    let exchanges: Vec<_> = objects
        .topology
        .exchanges
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(exchanges.contains(&"demo.account") && exchanges.contains(&"demo.order"));
    // Workers send a failed message to the retry queue through an exchange
    // of its own name, never the default exchange.
    assert!(exchanges.contains(&"demo.order.order.retry"));
}

#[test]
fn every_app_pod_passes_pod_security_restricted_with_a_read_only_root() {
    let objects = shop();
    for d in &objects.deployments {
        let p = pod(d);
        let sc = p.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert!(sc.run_as_user.unwrap() > 0);
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let c = &p.containers[0];
        let csc = c.security_context.as_ref().unwrap();
        assert_eq!(csc.allow_privilege_escalation, Some(false));
        assert_eq!(csc.read_only_root_filesystem, Some(true));
        assert_eq!(
            csc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        let data = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "data")
            .unwrap();
        assert_eq!(data.mount_path, "/var/lib/eventflow");
        let probe = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(probe.path.as_deref(), Some("/readyz"));
        assert_eq!(
            c.liveness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/livez")
        );
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Stream", "shop", Some(true))
        );
    }
}

#[test]
fn a_three_node_broker_clusters_through_the_headless_service_with_quorum_queues_and_a_cookie() {
    let broker: EventBroker = fixture("broker-managed-3.yaml");
    let wiring = broker_wiring(&broker);
    assert_eq!(wiring.queue_type, QueueType::Quorum);
    assert_eq!(wiring.secret.name, "rabbit-credentials");
    let objects = build_broker(&broker).unwrap();
    let sts = objects.stateful_set.spec.as_ref().unwrap();
    assert_eq!(sts.replicas, Some(3));
    assert_eq!(sts.service_name.as_deref(), Some("rabbit-nodes"));
    assert_eq!(
        objects
            .headless_service
            .spec
            .as_ref()
            .unwrap()
            .cluster_ip
            .as_deref(),
        Some("None")
    );
    let conf = &objects.config.data.as_ref().unwrap()["rabbitmq.conf"];
    assert!(
        conf.contains("rabbit_peer_discovery_classic_config"),
        "{conf}"
    );
    assert!(
        conf.contains("nodes.3 = rabbit@rabbit-2.rabbit-nodes.demo.svc.cluster.local"),
        "{conf}"
    );
    let plugins = &objects.config.data.as_ref().unwrap()["enabled_plugins"];
    assert!(plugins.contains("rabbitmq_management") && plugins.contains("rabbitmq_prometheus"));
    let pod = sts.template.spec.as_ref().unwrap();
    let cookie = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "cookie")
        .unwrap();
    assert_eq!(
        cookie.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("rabbit-erlang-cookie")
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("rabbitmq:4.1-management"),
        "official image by default"
    );
    let e = env(c);
    assert_eq!(
        e["RABBITMQ_DEFAULT_PASS"]["valueFrom"]["secretKeyRef"]["name"],
        "rabbit-credentials"
    );
    assert_eq!(
        e["RABBITMQ_NODENAME"]["value"],
        "rabbit@$(MY_POD_NAME).rabbit-nodes.demo.svc.cluster.local"
    );
    assert!(c.readiness_probe.is_some());
    assert!(
        !e.contains_key("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"),
        "without CPU resources the VM keeps its scheduler default"
    );
    let claim = &sts.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(
        claim.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("fast")
    );
    let retention = sts
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(
        retention.when_deleted.as_deref(),
        Some("Delete"),
        "volumes go with the EventBroker"
    );
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_user,
        Some(999)
    );
}

#[test]
fn a_single_node_broker_runs_the_overridden_image_without_cluster_formation() {
    let broker: EventBroker = fixture("broker-managed-1.yaml");
    assert_eq!(broker_wiring(&broker).queue_type, QueueType::Classic);
    let objects = build_broker(&broker).unwrap();
    let sts = objects.stateful_set.spec.as_ref().unwrap();
    assert_eq!(sts.replicas, Some(1));
    assert!(sts.volume_claim_templates.is_none());
    let pod = sts.template.spec.as_ref().unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("eventflow/rabbitmq:3.10-management")
    );
    assert_eq!(
        env(&pod.containers[0])["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]["value"],
        "+S 1:1",
        "a tenth of a core asked for: one Erlang scheduler"
    );
    assert!(!objects.config.data.as_ref().unwrap()["rabbitmq.conf"].contains("cluster_formation"));
    let ports: Vec<_> = objects
        .client_service
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [5672, 15672, 15692]);
}

#[test]
fn a_tls_broker_serves_amqps_only_with_its_certificate_and_streams_connect_on_5671() {
    let mut broker: EventBroker = fixture("broker-managed-tls.yaml");
    let wiring = broker_wiring(&broker);
    assert!(wiring.tls);
    assert_eq!(wiring.endpoint.as_deref(), Some("rabbit.demo.svc:5671"));
    let objects = build_broker(&broker).unwrap();
    let conf = &objects.config.data.as_ref().unwrap()["rabbitmq.conf"];
    assert!(
        conf.contains("listeners.tcp = none\n"),
        "no plaintext AMQP: {conf}"
    );
    assert!(conf.contains("listeners.ssl.default = 5671\n"), "{conf}");
    let ports = |svc: &k8s_openapi::api::core::v1::Service| -> Vec<(String, i32)> {
        svc.spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect()
    };
    assert_eq!(
        ports(&objects.client_service),
        [
            ("amqps".to_owned(), 5671),
            ("management".into(), 15672),
            ("prometheus".into(), 15692)
        ]
    );
    assert!(ports(&objects.headless_service).contains(&("amqps".to_owned(), 5671)));
    let pod = objects
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    let volume = |pod: &k8s_openapi::api::core::v1::PodSpec| {
        pod.volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "tls")
            .unwrap()
            .secret
            .clone()
            .unwrap()
            .secret_name
            .unwrap()
    };
    assert_eq!(volume(&pod), "rabbit-tls", "the generated certificate");
    let c = &pod.containers[0];
    assert!(
        c.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == "tls" && m.mount_path == "/etc/rabbitmq-tls")
    );
    let probe_port = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .tcp_socket
            .as_ref()
            .unwrap()
            .port
            .clone()
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    assert_eq!(probe_port(&c.readiness_probe), IntOrString::Int(5671));
    assert_eq!(probe_port(&c.liveness_probe), IntOrString::Int(5671));

    // A certificate of the user's (cert-manager) is mounted instead.
    broker
        .spec
        .managed
        .as_mut()
        .unwrap()
        .tls
        .as_mut()
        .unwrap()
        .secret_name = Some("rabbit-cert".into());
    let objects = build_broker(&broker).unwrap();
    let pod = objects.stateful_set.spec.unwrap().template.spec.unwrap();
    assert_eq!(volume(&pod), "rabbit-cert");
}

#[test]
fn an_external_broker_is_not_built_and_streams_use_its_connection_secret() {
    let broker: EventBroker = fixture("broker-external.yaml");
    assert!(build_broker(&broker).is_none());
    let wiring = broker_wiring(&broker);
    assert_eq!(
        (wiring.secret.name.as_str(), wiring.secret.key.as_str()),
        ("rabbit-uri", "amqp")
    );
    assert_eq!(wiring.mode, "external");
}
