//! Revisions: every change of a Stream's effective spec (after the DSL
//! expansion) recorded the Kubernetes way, as an `apps/v1`
//! ControllerRevision owned by the Stream, like StatefulSets and DaemonSets
//! record their pod templates:
//!
//! - named `<stream>-<hash>` (the hash of its [`RevisionData`]), labelled
//!   `eventflow.dev/stream=<stream>`, `revision` = its number;
//! - `data` = the user's spec (what a rollback writes back) and the
//!   effective apps (what was deployed, for `history`);
//! - numbers only grow: a spec equal to an earlier revision's (a rollback, a
//!   revert by hand) gives that ControllerRevision the next number rather
//!   than a duplicate, so a rollback is itself the newest revision;
//! - at most `spec.revisionHistoryLimit` are kept (the current one included),
//!   the oldest pruned first.
//!
//! Not part of a revision, and kept as they are by a rollback: `suspend`,
//! `drainTimeoutSeconds` and `revisionHistoryLimit` — how the Stream is
//! operated, not what it deploys.
//!
//! [`record`] is the reconcile's step; [`rollback`] and [`summary`] are what
//! `kubectl eventflow rollback` and `history` run.

mod plan;
pub mod record;
pub mod rollback;
pub mod summary;

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::{Api, Client, api::ListParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use record::{Recorded, record};

use crate::{
    api::{App, DEFAULT_REVISION_HISTORY_LIMIT, StreamSpec},
    fingerprint,
    naming::LABEL_STREAM,
};

/// The Stream annotation whose value a new revision records as its cause
/// (`kubectl eventflow rollback` sets it; so may the user).
pub const CHANGE_CAUSE: &str = "eventflow.dev/change-cause";
/// kubectl's annotation, read when ours is absent.
pub const KUBECTL_CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// On a ControllerRevision: the Stream's change cause when it was recorded,
/// stale or not (a cause already seen is not recorded again).
pub const SEEN_CAUSE: &str = "eventflow.dev/seen-change-cause";
/// On a ControllerRevision: when it became the revision its number says.
pub const RECORDED_AT: &str = "eventflow.dev/recorded-at";

/// Spec fields that say how the Stream is operated, not what it deploys:
/// no revision records them and a rollback keeps their current values.
pub const OPERATIONAL_FIELDS: [&str; 3] =
    ["suspend", "drainTimeoutSeconds", "revisionHistoryLimit"];

/// What a ControllerRevision of a Stream holds in `data`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionData {
    /// The user's spec without the [`OPERATIONAL_FIELDS`] (a definition
    /// Stream's: its definition and deploymentProperties, no apps).
    pub spec: Value,
    /// The apps deployed: the spec's, or the definition's expansion.
    pub apps: Vec<App>,
}

impl RevisionData {
    /// The revision of an effective spec (a definition Stream's `apps` are its expansion).
    pub fn of(effective: &StreamSpec) -> Self {
        Self {
            spec: user_spec(effective),
            apps: effective.apps.clone(),
        }
    }

    /// A stable hash (FNV-1a of the JSON), the name suffix of the revision.
    pub fn hash(&self) -> String {
        format!("{:016x}", fingerprint::of(self))[..10].to_owned()
    }
}

/// The spec as the user wrote it, without the [`OPERATIONAL_FIELDS`]: what a
/// revision records and a rollback writes back. `spec` may be an expanded
/// one: a definition's apps are not the user's.
pub fn user_spec(spec: &StreamSpec) -> Value {
    let mut spec = spec.clone();
    if spec.definition.is_some() {
        spec.apps.clear();
    }
    let mut value = serde_json::to_value(&spec).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        for f in OPERATIONAL_FIELDS {
            fields.remove(f);
        }
    }
    value
}

/// Name of the ControllerRevision of `data` for Stream `stream`.
pub fn revision_name(stream: &str, data: &RevisionData) -> String {
    format!("{stream}-{}", data.hash())
}

/// How many revisions a Stream keeps.
pub fn history_limit(spec: &StreamSpec) -> usize {
    usize::try_from(
        spec.revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
            .max(1),
    )
    .unwrap_or(1)
}

/// The change cause a Stream carries now (ours, else kubectl's).
pub fn change_cause(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    let annotations = meta.annotations.as_ref()?;
    annotations
        .get(CHANGE_CAUSE)
        .or_else(|| annotations.get(KUBECTL_CHANGE_CAUSE))
        .filter(|c| !c.trim().is_empty())
        .cloned()
}

/// One revision of a Stream as `history` shows it.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub number: i64,
    /// The ControllerRevision's name.
    pub name: String,
    /// When it became this revision (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    pub data: RevisionData,
}

impl Revision {
    /// The revision a ControllerRevision holds (`None` if its data is not a Stream revision's).
    pub fn from_controller_revision(cr: &ControllerRevision) -> Option<Self> {
        let data: RevisionData = serde_json::from_value(cr.data.as_ref()?.0.clone()).ok()?;
        let annotations = cr.metadata.annotations.clone().unwrap_or_default();
        Some(Self {
            number: cr.revision,
            name: cr.metadata.name.clone()?,
            recorded_at: annotations.get(RECORDED_AT).cloned().or_else(|| {
                cr.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
            }),
            change_cause: annotations.get(CHANGE_CAUSE).cloned(),
            data,
        })
    }
}

/// Whether `cr` is owned (as its controller) by the Stream with `uid`.
pub fn owned_by(cr: &ControllerRevision, uid: &str) -> bool {
    cr.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "Stream" && o.uid == uid)
}

/// The ControllerRevisions labelled for Stream `stream` (any owner).
pub async fn list_controller_revisions(
    client: &Client,
    namespace: &str,
    stream: &str,
) -> kube::Result<Vec<ControllerRevision>> {
    let api = Api::<ControllerRevision>::namespaced(client.clone(), namespace);
    let selector = format!("{LABEL_STREAM}={stream}");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// The revisions of the Stream with `uid`, oldest first.
pub async fn history(
    client: &Client,
    namespace: &str,
    stream: &str,
    uid: &str,
) -> kube::Result<Vec<Revision>> {
    let mut revisions: Vec<Revision> = list_controller_revisions(client, namespace, stream)
        .await?
        .iter()
        .filter(|cr| owned_by(cr, uid))
        .filter_map(Revision::from_controller_revision)
        .collect();
    revisions.sort_by_key(|r| r.number);
    Ok(revisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> StreamSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn suspend_and_the_other_operational_fields_are_not_part_of_a_revision() {
        let base = serde_json::json!({"broker": "rabbit", "apps": [
            {"name": "a", "image": "a:1", "worker": {}, "subscribes": [{"destination": "d"}]}]});
        let plain = RevisionData::of(&spec(base.clone()));
        let mut operated = base.clone();
        operated["suspend"] = true.into();
        operated["drainTimeoutSeconds"] = 60.into();
        operated["revisionHistoryLimit"] = 3.into();
        assert_eq!(RevisionData::of(&spec(operated)), plain);
        assert_eq!(RevisionData::of(&spec(base.clone())).hash(), plain.hash());
        let mut image = base;
        image["apps"][0]["image"] = "a:2".into();
        assert_ne!(RevisionData::of(&spec(image)).hash(), plain.hash());
        assert_eq!(plain.hash().len(), 10);
    }

    #[test]
    fn a_definition_stream_records_its_definition_and_the_apps_it_expanded_to() {
        let mut expanded = spec(
            serde_json::json!({"broker": "rabbit", "definition": "time | log",
            "deploymentProperties": {"deployer.log.count": "2"}}),
        );
        expanded.apps = spec(serde_json::json!({"broker": "rabbit", "apps": [
            {"name": "log", "image": "log:1", "worker": {}, "subscribes": [{"destination": "d"}]}]}))
        .apps;
        let data = RevisionData::of(&expanded);
        assert_eq!(data.apps.len(), 1);
        assert!(data.spec.get("apps").is_none(), "{}", data.spec);
        assert_eq!(data.spec["definition"], "time | log");
        assert_eq!(data.spec["deploymentProperties"]["deployer.log.count"], "2");
    }
}
