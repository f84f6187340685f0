//! The manifests: AppRegistrations (by name), then Streams (in input
//! order), as YAML documents separated by `---`, for `kubectl apply -f`.

use std::collections::BTreeMap;

use eventflow_operator::api::{AppRegistration, AppRegistrationSpec, Stream, StreamSpec};

use super::check::CheckedStream;

/// The AppRegistration objects, in the namespace.
pub fn registration_objects(
    registrations: &BTreeMap<String, AppRegistrationSpec>,
    namespace: &str,
) -> Vec<AppRegistration> {
    registrations
        .iter()
        .map(|(name, spec)| {
            let mut r = AppRegistration::new(name, spec.clone());
            r.metadata.namespace = Some(namespace.to_owned());
            r
        })
        .collect()
}

/// The Stream objects, in the namespace, on `broker`.
pub fn stream_objects(streams: &[CheckedStream], namespace: &str, broker: &str) -> Vec<Stream> {
    streams
        .iter()
        .map(|s| {
            let mut out = Stream::new(
                &s.name,
                StreamSpec {
                    broker: broker.to_owned(),
                    apps: Vec::new(),
                    definition: Some(s.definition.clone()),
                    deployment_properties: s.deployment_properties.clone(),
                    ..Default::default()
                },
            );
            out.metadata.namespace = Some(namespace.to_owned());
            out
        })
        .collect()
}

/// Every object as one multi-document YAML text.
pub fn manifests(
    registrations: &BTreeMap<String, AppRegistrationSpec>,
    streams: &[CheckedStream],
    namespace: &str,
    broker: &str,
) -> anyhow::Result<String> {
    let mut documents = Vec::new();
    for r in registration_objects(registrations, namespace) {
        documents.push(serde_yaml::to_string(&r)?);
    }
    for s in stream_objects(streams, namespace, broker) {
        documents.push(serde_yaml::to_string(&s)?);
    }
    Ok(documents
        .iter()
        .map(|d| format!("---\n{d}"))
        .collect::<String>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn registrations_come_first_then_streams_each_a_document() {
        let registrations = BTreeMap::from([(
            "source.time".to_owned(),
            AppRegistrationSpec {
                image: "docker.io/eventflow/spring-time-source:dev".to_owned(),
                runtime: Default::default(),
                spring: None,
                web_port: None,
                properties: BTreeMap::new(),
                resources: None,
            },
        )]);
        let streams = [CheckedStream {
            name: "ticktock".to_owned(),
            definition: "time | log".to_owned(),
            deployment_properties: BTreeMap::from([(
                "deployer.log.count".to_owned(),
                "2".to_owned(),
            )]),
        }];
        let yaml = manifests(&registrations, &streams, "demo", "rabbit").unwrap();
        let want = "\
---
apiVersion: eventflow.dev/v1alpha1
kind: AppRegistration
metadata:
  name: source.time
  namespace: demo
spec:
  image: docker.io/eventflow/spring-time-source:dev
  runtime: SpringCloudStream
---
apiVersion: eventflow.dev/v1alpha1
kind: Stream
metadata:
  name: ticktock
  namespace: demo
spec:
  broker: rabbit
  definition: time | log
  deploymentProperties:
    deployer.log.count: '2'
  deletionPolicy: Delete
";
        assert_eq!(yaml, want);
    }
}
