//! The revision step of a reconcile: the effective spec about to be applied
//! recorded as the Stream's newest revision (created, or an earlier one
//! renumbered), the history pruned to its limit. What this process last
//! recorded is remembered, so a reconcile of an unchanged spec costs no
//! request.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::{api::apps::v1::ControllerRevision, apimachinery::pkg::runtime::RawExtension};
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::{
    CHANGE_CAUSE, RECORDED_AT, RevisionData, SEEN_CAUSE, change_cause, history_limit,
    list_controller_revisions, owned_by,
    plan::{Existing, Write, plan},
    revision_name,
};
use crate::{
    Error, Result,
    context::Context,
    naming::{MANAGER, stream_labels},
    validate::ValidStream,
};

/// The revision this process last recorded for each Stream (by uid): its
/// ControllerRevision, number and the history limit it was pruned to.
#[derive(Default)]
pub struct Recorded {
    entries: Mutex<HashMap<String, (String, i64, usize)>>,
}

impl Recorded {
    fn get(&self, uid: &str) -> Option<(String, i64, usize)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(uid).cloned()
    }

    fn set(&self, uid: &str, entry: (String, i64, usize)) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(uid.to_owned(), entry);
    }

    /// Forgets a Stream (deleted).
    pub fn forget(&self, uid: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(uid);
    }
}

/// Records the effective spec of `valid` (expanded) as the Stream's newest
/// revision and returns its number.
pub async fn record(ctx: &Context, valid: &ValidStream<'_>) -> Result<i64> {
    let stream = valid.stream;
    let data = RevisionData::of(&stream.spec);
    let name = revision_name(valid.name, &data);
    let limit = history_limit(&stream.spec);
    let uid = valid.owner.uid.as_str();
    let deployed = stream.status.as_ref().and_then(|s| s.current_revision);
    if let Some((last, number, pruned_to)) = ctx.revisions.get(uid)
        && last == name
        && pruned_to == limit
        && deployed == Some(number)
    {
        return Ok(number);
    }

    let api = Api::<ControllerRevision>::namespaced(ctx.client.clone(), valid.namespace);
    let listed = list_controller_revisions(&ctx.client, valid.namespace, valid.name).await?;
    let (ours, strays): (Vec<_>, Vec<_>) = listed.iter().partition(|cr| owned_by(cr, uid));
    // Left by an earlier Stream of this name (no garbage collector ran): never ours to reuse.
    for stray in strays.iter().filter(|cr| stream_owned(cr)) {
        delete(&api, stray.metadata.name.as_deref().unwrap_or_default()).await?;
    }
    let value =
        serde_json::to_value(&data).map_err(|e| Error::Revision(format!("its data: {e}")))?;
    let existing: Vec<Existing> = ours
        .iter()
        .map(|cr| Existing {
            name: cr.metadata.name.clone().unwrap_or_default(),
            number: cr.revision,
            same_data: cr.data.as_ref().map(|d| &d.0) == Some(&value),
            seen_cause: cr
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SEEN_CAUSE).cloned()),
        })
        .collect();
    let cause = change_cause(&stream.metadata);
    let plan = plan(&existing, &name, cause.as_deref(), limit)
        .map_err(|e| Error::Revision(e.to_string()))?;
    let now = jiff::Timestamp::now().to_string();
    match &plan.write {
        Write::Nothing => {}
        Write::Create => {
            let mut annotations = std::collections::BTreeMap::from([(RECORDED_AT.to_owned(), now)]);
            if let Some(cause) = &plan.cause {
                annotations.insert(CHANGE_CAUSE.to_owned(), cause.clone());
            }
            if let Some(seen) = &cause {
                annotations.insert(SEEN_CAUSE.to_owned(), seen.clone());
            }
            let cr = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(valid.namespace.to_owned()),
                    labels: Some(stream_labels(valid.name)),
                    annotations: Some(annotations),
                    owner_references: Some(vec![valid.owner.clone()]),
                    ..Default::default()
                },
                data: Some(RawExtension(value)),
                revision: plan.current,
            };
            let params = PostParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            api.create(&params, &cr).await?;
        }
        Write::Renumber { name } => {
            let mut annotations = json!({ RECORDED_AT: now, SEEN_CAUSE: cause });
            if let Some(cause) = &plan.cause {
                annotations[CHANGE_CAUSE] = cause.clone().into();
            }
            let patch = json!({"revision": plan.current, "metadata": {"annotations": annotations}});
            let params = PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            };
            api.patch(name, &params, &Patch::Merge(&patch)).await?;
        }
    }
    for doomed in &plan.prune {
        delete(&api, doomed).await?;
    }
    if plan.write != Write::Nothing {
        let cause = plan
            .cause
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        let note = format!(
            "revision {} (ControllerRevision {name}){cause}",
            plan.current
        );
        ctx.event(stream, false, "RevisionRecorded", note).await;
    }
    ctx.revisions.set(uid, (name, plan.current, limit));
    Ok(plan.current)
}

/// Whether a ControllerRevision's controller is a Stream.
fn stream_owned(cr: &ControllerRevision) -> bool {
    cr.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "Stream")
}

async fn delete(api: &Api<ControllerRevision>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
