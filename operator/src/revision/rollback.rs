//! A rollback, done the way `kubectl rollout undo` does it for a Deployment:
//! client side, through the API. The Stream's spec gets an earlier
//! revision's user spec back (a definition Stream its definition and
//! deploymentProperties), keeping the [`OPERATIONAL_FIELDS`] as they are,
//! and the annotation `eventflow.dev/change-cause: rollback to revision N`;
//! the operator then deploys it and records it as the newest revision. The
//! Stream's stored spec is the rolled-back one: nothing stale stays behind.
//!
//! [`pick_target`] and [`patch`] are pure; [`rollback`] reads the Stream and
//! its revisions and writes the patch (what `kubectl eventflow rollback` runs).

use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Map, Value, json};

use super::{CHANGE_CAUSE, OPERATIONAL_FIELDS, Revision, history, summary, user_spec};
use crate::api::Stream;

/// The field manager of a rollback's write.
pub const FIELD_MANAGER: &str = "kubectl-eventflow";

/// Why a rollback cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("Stream {0} not found")]
    StreamNotFound(String),
    #[error("Stream {0} has no revisions yet (the operator records one when it deploys a spec)")]
    NoRevisions(String),
    #[error("Stream {stream} has no revision {number} (revisions: {available})")]
    UnknownRevision {
        stream: String,
        number: i64,
        available: String,
    },
    #[error("Stream {stream} is already at revision {number}: its spec is that revision's")]
    AlreadyAt { stream: String, number: i64 },
    #[error(
        "Stream {stream} has no revision before {current} with another spec to roll back to (revisions: {available})"
    )]
    NoPrevious {
        stream: String,
        current: i64,
        available: String,
    },
    #[error(
        "Stream {0} changed while rolling back (someone else wrote it); run the rollback again"
    )]
    Conflict(String),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
}

fn numbers(revisions: &[Revision]) -> String {
    revisions
        .iter()
        .map(|r| r.number.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The revision to roll back to. `current` is the Stream's user spec now
/// ([`user_spec`]). Without `to`: the newest revision before the one whose
/// spec the Stream has, with another spec; when the Stream's spec is no
/// revision's (an edit not deployed, e.g. an invalid one), the newest revision.
pub fn pick_target<'a>(
    stream: &str,
    revisions: &'a [Revision],
    current: &Value,
    to: Option<i64>,
) -> Result<&'a Revision, RollbackError> {
    if revisions.is_empty() {
        return Err(RollbackError::NoRevisions(stream.to_owned()));
    }
    if let Some(number) = to {
        let target = revisions
            .iter()
            .find(|r| r.number == number)
            .ok_or_else(|| RollbackError::UnknownRevision {
                stream: stream.to_owned(),
                number,
                available: numbers(revisions),
            })?;
        if &target.data.spec == current {
            return Err(RollbackError::AlreadyAt {
                stream: stream.to_owned(),
                number,
            });
        }
        return Ok(target);
    }
    let newest = |rs: &mut dyn Iterator<Item = &'a Revision>| rs.max_by_key(|r| r.number);
    let now = newest(&mut revisions.iter().filter(|r| &r.data.spec == current));
    match now {
        None => Ok(newest(&mut revisions.iter()).unwrap_or(&revisions[0])),
        Some(now) => newest(
            &mut revisions
                .iter()
                .filter(|r| r.number < now.number && &r.data.spec != current),
        )
        .ok_or_else(|| RollbackError::NoPrevious {
            stream: stream.to_owned(),
            current: now.number,
            available: numbers(revisions),
        }),
    }
}

/// The change cause a rollback to revision `number` records.
pub fn cause(number: i64) -> String {
    format!("rollback to revision {number}")
}

/// The JSON merge patch that gives a Stream whose spec is `current_spec`
/// (as stored) and whose resourceVersion is `resource_version` the spec of
/// `target`, keeping the operational fields. The resourceVersion makes the
/// API server refuse it if the Stream changed since it was read.
pub fn patch(current_spec: &Value, resource_version: &str, target: &Revision) -> Value {
    let mut spec = target.data.spec.clone();
    if let (Some(spec), Some(now)) = (spec.as_object_mut(), current_spec.as_object()) {
        for f in OPERATIONAL_FIELDS {
            match now.get(f) {
                Some(v) => spec.insert(f.to_owned(), v.clone()),
                None => spec.remove(f),
            };
        }
    }
    json!({
        "metadata": {
            "resourceVersion": resource_version,
            "annotations": {CHANGE_CAUSE: cause(target.number)},
        },
        "spec": merge_diff(current_spec, &spec),
    })
}

/// The JSON merge patch (RFC 7386) turning `from` into `to`: removed
/// fields `null`, objects recursed into, anything else replaced whole.
pub fn merge_diff(from: &Value, to: &Value) -> Value {
    let (Some(from), Some(to)) = (from.as_object(), to.as_object()) else {
        return to.clone();
    };
    let mut out = Map::new();
    for (k, v) in to {
        match from.get(k) {
            Some(old) if old == v => {}
            Some(old) if old.is_object() && v.is_object() => {
                out.insert(k.clone(), merge_diff(old, v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for k in from.keys().filter(|k| !to.contains_key(*k)) {
        out.insert(k.clone(), Value::Null);
    }
    Value::Object(out)
}

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The revision the operator had deployed (`status.currentRevision`).
    pub from: Option<i64>,
    /// The revision whose spec the Stream has now.
    pub to: i64,
    pub change_cause: String,
    /// What changes from the deployed revision (or the spec) to the target.
    pub changes: Vec<String>,
}

/// Rolls Stream `name` of `namespace` back to revision `to` (default: the
/// one before the current; see [`pick_target`]).
pub async fn rollback(
    client: &Client,
    namespace: &str,
    name: &str,
    to: Option<i64>,
) -> Result<Outcome, RollbackError> {
    let key = format!("{namespace}/{name}");
    let api = Api::<Stream>::namespaced(client.clone(), namespace);
    let stream = api
        .get_opt(name)
        .await?
        .ok_or_else(|| RollbackError::StreamNotFound(key.clone()))?;
    let uid = stream.uid().unwrap_or_default();
    let revisions = history(client, namespace, name, &uid).await?;
    let current = user_spec(&stream.spec);
    let target = pick_target(&key, &revisions, &current, to)?;
    let deployed = stream.status.as_ref().and_then(|s| s.current_revision);
    let from = revisions
        .iter()
        .find(|r| Some(r.number) == deployed)
        .map(|r| r.data.clone());
    let changes = match &from {
        Some(from) => summary::changes(from, &target.data),
        None => vec![],
    };
    let stored = serde_json::to_value(&stream.spec).unwrap_or(Value::Null);
    let body = patch(
        &stored,
        &stream.resource_version().unwrap_or_default(),
        target,
    );
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.patch(name, &params, &Patch::Merge(&body)).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(RollbackError::Conflict(key)),
        Err(e) => return Err(e.into()),
    }
    Ok(Outcome {
        from: deployed,
        to: target.number,
        change_cause: cause(target.number),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::StreamSpec, revision::RevisionData};

    fn revision(number: i64, image: &str) -> Revision {
        let spec: StreamSpec = serde_json::from_value(json!({"broker": "rabbit", "apps": [
            {"name": "a", "image": image, "worker": {}, "subscribes": [{"destination": "d"}]}]}))
        .unwrap();
        Revision {
            number,
            name: format!("s-{number}"),
            recorded_at: None,
            change_cause: None,
            data: RevisionData::of(&spec),
        }
    }

    #[test]
    fn by_default_the_revision_before_the_current_one_with_another_spec() {
        // 1: a:1, 2: a:2, 4: a:1 again (3 pruned), 5: a:3 is current.
        let rs = [
            revision(1, "a:1"),
            revision(2, "a:2"),
            revision(4, "a:1"),
            revision(5, "a:3"),
        ];
        let current = rs[3].data.spec.clone();
        assert_eq!(pick_target("s", &rs, &current, None).unwrap().number, 4);
        // Current is a:1 (revision 4): 2 is the one before with another spec.
        let rs = &rs[..3];
        let current = rs[2].data.spec.clone();
        assert_eq!(pick_target("s", rs, &current, None).unwrap().number, 2);
    }

    #[test]
    fn a_spec_no_revision_has_rolls_back_to_the_newest_revision() {
        let rs = [revision(1, "a:1"), revision(2, "a:2")];
        let edited = revision(9, "a:broken").data.spec;
        assert_eq!(pick_target("s", &rs, &edited, None).unwrap().number, 2);
    }

    #[test]
    fn unknown_current_and_first_revisions_are_clear_errors() {
        let rs = [revision(1, "a:1"), revision(2, "a:2")];
        let current = rs[1].data.spec.clone();
        let e = pick_target("ns/s", &rs, &current, Some(7)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Stream ns/s has no revision 7 (revisions: 1, 2)"
        );
        let e = pick_target("ns/s", &rs, &current, Some(2)).unwrap_err();
        assert!(
            matches!(e, RollbackError::AlreadyAt { number: 2, .. }),
            "{e}"
        );
        let first = rs[0].data.spec.clone();
        let e = pick_target("ns/s", &rs[..1], &first, None).unwrap_err();
        assert!(
            matches!(e, RollbackError::NoPrevious { current: 1, .. }),
            "{e}"
        );
        assert!(matches!(
            pick_target("ns/s", &[], &first, None).unwrap_err(),
            RollbackError::NoRevisions(_)
        ));
    }

    #[test]
    fn the_patch_restores_the_user_spec_keeps_suspend_and_drops_what_the_target_lacks() {
        // Now: a definition Stream, suspended. Target: a Stream of apps.
        let now = json!({"broker": "rabbit", "definition": "time | log", "suspend": true,
            "deploymentProperties": {"deployer.log.count": "2"}, "deletionPolicy": "Delete"});
        let target = revision(3, "a:1");
        let p = patch(&now, "42", &target);
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(
            p["metadata"]["annotations"][CHANGE_CAUSE],
            "rollback to revision 3"
        );
        let spec = &p["spec"];
        assert_eq!(spec["definition"], Value::Null);
        assert_eq!(spec["deploymentProperties"], Value::Null);
        assert_eq!(spec["apps"][0]["image"], "a:1");
        assert!(spec.get("suspend").is_none(), "suspend is kept: {spec}");
        assert!(spec.get("broker").is_none(), "unchanged: {spec}");
        // Applying the merge patch gives the target's spec plus suspend.
        let mut applied = now.clone();
        merge(&mut applied, spec);
        let mut expected = target.data.spec.clone();
        expected["suspend"] = true.into();
        assert_eq!(applied, expected);
    }

    #[test]
    fn a_map_loses_the_keys_the_target_lacks() {
        let from = json!({"p": {"a": "1", "b": "2"}});
        let to = json!({"p": {"a": "1"}});
        assert_eq!(merge_diff(&from, &to), json!({"p": {"b": null}}));
    }

    /// RFC 7386 apply, as the API server does it.
    fn merge(target: &mut Value, patch: &Value) {
        let Some(p) = patch.as_object() else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}
