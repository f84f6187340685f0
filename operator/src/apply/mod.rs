//! The apply step: server-side apply of desired objects with one field
//! manager (so edits by others to fields we own are reverted, and a
//! deleted object is recreated), removal of objects that carry our labels
//! but are no longer desired, and create-once Secrets (generated passwords
//! must never be regenerated). [`stream`] applies a Stream's objects,
//! skipping what [`record`] shows unchanged since our last write;
//! [`network`] its NetworkPolicy.

pub mod network;
pub mod record;
pub mod stream;

use std::{collections::BTreeMap, fmt::Debug};

use k8s_openapi::{
    ByteString, NamespaceResourceScope, api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{Result, naming::MANAGER};

/// Server-side applies `obj` (forcing our ownership of its fields) and returns the stored object.
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = obj.meta().namespace.as_deref().unwrap_or_default();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    Ok(api
        .patch(
            &obj.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// Deletes each object of `candidates` (our objects of one kind in one
/// namespace) that is not in `keep` and not being deleted already;
/// returns the names deleted (one already gone is not).
pub async fn remove_unwanted<'a, K>(
    api: &Api<K>,
    candidates: impl IntoIterator<Item = &'a ObjectMeta>,
    keep: &[String],
) -> Result<Vec<String>>
where
    K: Resource + DeserializeOwned + Clone + Debug,
{
    let doomed: Vec<String> = candidates
        .into_iter()
        .filter(|m| m.deletion_timestamp.is_none())
        .filter_map(|m| m.name.clone())
        .filter(|name| !keep.contains(name))
        .collect();
    let mut removed = Vec::new();
    for name in doomed {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => removed.push(name),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

/// Deletes every object matching `selector` whose name is not in `keep`;
/// returns the names deleted.
pub async fn remove_orphans<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    keep: &[String],
) -> Result<Vec<String>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let listed = api
        .list_metadata(&ListParams::default().labels(selector))
        .await?;
    remove_unwanted(&api, listed.iter().map(|o| &o.metadata), keep).await
}

/// Creates Secret `meta.name` with `data` unless it exists; an existing
/// Secret is never changed. Returns whether it was created.
pub async fn create_secret_once(
    client: &Client,
    meta: ObjectMeta,
    data: BTreeMap<String, String>,
) -> Result<bool> {
    let api = Api::<Secret>::namespaced(
        client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
    );
    if api
        .get_metadata_opt(&meta.name.clone().unwrap_or_default())
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let secret = Secret {
        metadata: meta,
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api
        .create(
            &PostParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &secret,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Brings the keys of the existing Secret `name` that `derive` computes
/// from its data (UTF-8 values only) to their values: a key derived as
/// `None` is removed. Keys not derived are never touched (a generated
/// password stays), nor is a missing Secret created. Returns the keys
/// changed.
pub async fn sync_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    derive: impl FnOnce(&BTreeMap<String, String>) -> BTreeMap<String, Option<String>>,
) -> Result<Vec<String>> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Vec::new());
    };
    let data = secret_text(&secret);
    let changed: BTreeMap<String, Option<ByteString>> = derive(&data)
        .into_iter()
        .filter(|(k, v)| data.get(k) != v.as_ref())
        .map(|(k, v)| (k, v.map(|v| ByteString(v.into_bytes()))))
        .collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    // A merge patch touches only the keys changed (null removes one); the
    // resourceVersion makes it fail rather than overwrite a concurrent change.
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": secret.metadata.resource_version},
        "data": changed,
    });
    api.patch(
        name,
        &PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(changed.into_keys().collect())
}

/// The UTF-8 values of a Secret's data, by key (others are left out).
pub fn secret_text(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| String::from_utf8(v.0.clone()).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// A random alphanumeric string of `len` characters (passwords, Erlang cookies).
pub fn random_token(len: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| crate::Error::Random(e.to_string()))?;
    // 256 % 62 != 0 leaves a slight bias; irrelevant at 32+ characters of entropy.
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}
