//! The pod template every workload of ours shares: Pod Security
//! "restricted" for the given UID, no service-account token, no service
//! links; and the volume helpers its containers use.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Container, EmptyDirVolumeSource, PodSpec, PodTemplateSpec, Volume, VolumeMount,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::security::pod_security;

pub fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

pub fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// A restricted pod running `containers` as `uid` with `volumes`.
pub fn pod_template(
    labels: BTreeMap<String, String>,
    uid: i64,
    containers: Vec<Container>,
    volumes: Vec<Volume>,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers,
            security_context: Some(pod_security(uid)),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}
