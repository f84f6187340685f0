//! The broker's two Services: the client Service Streams and users connect
//! to (AMQP or, with TLS, AMQPS; management, prometheus) and the headless Service that gives
//! each node the stable DNS name peer discovery needs.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{MANAGEMENT_PORT, Managed, PROMETHEUS_PORT};
use crate::naming;

/// Erlang port mapper and distribution ports, for clustering.
pub(super) const EPMD_PORT: i32 = 4369;
pub(super) const DIST_PORT: i32 = 25672;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(port)),
        ..Default::default()
    }
}

pub(super) fn client_service(broker: &Managed<'_>) -> Service {
    let (client_port, client_number) = broker.client_port();
    Service {
        metadata: broker.meta(&broker.names.name),
        spec: Some(ServiceSpec {
            selector: Some(naming::broker_selector(broker.name)),
            ports: Some(vec![
                port(client_port, client_number),
                port("management", MANAGEMENT_PORT),
                port("prometheus", PROMETHEUS_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn headless_service(broker: &Managed<'_>) -> Service {
    let (client_port, client_number) = broker.client_port();
    Service {
        metadata: broker.meta(&broker.names.headless),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(naming::broker_selector(broker.name)),
            ports: Some(vec![
                port("epmd", EPMD_PORT),
                port(client_port, client_number),
                port("dist", DIST_PORT),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
