//! Tier 2: the CRDs install on a real API server, a valid Stream and
//! EventBroker are accepted, and every manifest in `fixtures/invalid/` is
//! rejected with 422 Invalid naming the offending field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
};

/// The crate's directory, read when the test runs: a target directory shared
/// between clones may hold a binary built in another checkout.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

fn api_resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "Stream" => "streams",
        "AppRegistration" => "appregistrations",
        _ => "eventbrokers",
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("eventflow.dev", "v1alpha1", kind),
        plural,
    )
}

fn read(path: &std::path::Path) -> (String, DynamicObject) {
    let text = std::fs::read_to_string(path).unwrap();
    let field = text
        .lines()
        .find_map(|l| l.strip_prefix("# field: "))
        .unwrap_or_else(|| panic!("{} has no `# field:` header", path.display()))
        .trim()
        .to_owned();
    (field, serde_yaml::from_str(&text).unwrap())
}

#[tokio::test]
#[ignore = "needs kube-apiserver"]
async fn invalid_manifests_are_rejected_with_422_naming_the_field_after_valid_ones_are_accepted() {
    let client = common::client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "admission").await;

    // Valid objects first: a missing or broken CRD can never make this test pass.
    let dir = std::path::Path::new(&manifest_dir()).join("tests/fixtures");
    for valid in [
        "stream-shop.yaml",
        "stream-spring.yaml",
        "stream-definition.yaml",
        "stream-autoscale.yaml",
        "appregistration.yaml",
        "broker-managed-3.yaml",
    ] {
        let mut obj: DynamicObject =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join("valid").join(valid)).unwrap())
                .unwrap();
        obj.metadata.uid = None;
        obj.metadata.namespace = None;
        let kind = obj.types.as_ref().unwrap().kind.clone();
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &api_resource(&kind));
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("valid {valid} was rejected: {e}"));
    }

    let mut files: Vec<_> = std::fs::read_dir(dir.join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "at least 12 invalid fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let (field, obj) = read(path);
        let kind = obj.types.as_ref().unwrap().kind.clone();
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &api_resource(&kind));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => failures.push(format!("{name}: was accepted")),
            Err(kube::Error::Api(status)) => {
                let causes = status
                    .details
                    .as_ref()
                    .map(|d| d.causes.clone())
                    .unwrap_or_default();
                let named = causes
                    .iter()
                    .any(|c| c.field == field || c.message.contains(&field));
                if status.code != 422 || status.reason != "Invalid" || !named {
                    failures.push(format!(
                        "{name}: expected 422 Invalid at {field}, got {} {} {causes:?}",
                        status.code, status.reason
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid manifests misbehaved:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    common::teardown(&client, &ns).await;
}
