//! The container images the tests run: ours, built from this repository
//! (`make images`) under one tag, and the third-party ones they use.

/// Tag of the images built from this repository (`EVENTFLOW_IMAGE_TAG`, default `dev`).
pub fn image_tag() -> String {
    std::env::var("EVENTFLOW_IMAGE_TAG").unwrap_or_else(|_| "dev".into())
}

/// An image of ours, e.g. `image("e2e-smoke")` -> `docker.io/eventflow/e2e-smoke:dev`.
pub fn image(name: &str) -> String {
    format!("docker.io/eventflow/{name}:{}", image_tag())
}

/// RabbitMQ 3.10 (Debian bookworm's package), the examples' broker.
pub const RABBITMQ_IMAGE: &str = "docker.io/eventflow/rabbitmq:3.10-management";
/// RabbitMQ 4.0 (Debian trixie's package), the series of the operator's
/// default image on real clusters (`e2e/images/rabbitmq4`).
pub const RABBITMQ4_IMAGE: &str = "docker.io/eventflow/rabbitmq:4.0-management";
pub const BASE_IMAGE: &str = "docker.io/library/debian:bookworm-slim";
