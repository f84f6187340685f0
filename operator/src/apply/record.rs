//! What the operator itself last wrote, per object: the uid, generation and
//! resourceVersion the API server answered and the fingerprint of what was
//! sent. Two uses:
//! - an apply is skipped when the cached object is still the one we wrote
//!   (same uid; same generation for a Deployment, whose status changes do
//!   not move it; same resourceVersion for anything else) and we would send
//!   the same thing again — an edit by someone else moves the generation or
//!   resourceVersion, a deletion empties the cache, so drift is still put
//!   back;
//! - a watch event that carries exactly the resourceVersion of our own write
//!   wakes no reconcile: that reconcile already saw the answer.
//!
//! Held in memory by the leader: a new leader starts empty and applies
//! everything once.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    uid: Option<String>,
    generation: Option<i64>,
    resource_version: Option<String>,
    fingerprint: u64,
}

/// Key of an object: kind, namespace, name.
type Key = (&'static str, String, String);

fn key(kind: &'static str, meta: &ObjectMeta) -> Key {
    (
        kind,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// How to tell that an object is still as we wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// By `metadata.generation` (kinds with a status the API server's
    /// controllers update, such as Deployments).
    Generation,
    /// By `metadata.resourceVersion`.
    ResourceVersion,
}

#[derive(Default)]
pub struct Record {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Record {
    /// Remembers what the API server answered to our apply of `fingerprint`.
    pub fn remember(&self, kind: &'static str, stored: &ObjectMeta, fingerprint: u64) {
        let entry = Entry {
            uid: stored.uid.clone(),
            generation: stored.generation,
            resource_version: stored.resource_version.clone(),
            fingerprint,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(key(kind, stored), entry);
    }

    /// Whether `cached` is still the object we wrote with `fingerprint`.
    pub fn unchanged(
        &self,
        kind: &'static str,
        cached: &ObjectMeta,
        fingerprint: u64,
        tracking: Tracking,
    ) -> bool {
        if cached.deletion_timestamp.is_some() {
            return false;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&key(kind, cached)).is_some_and(|e| {
            e.fingerprint == fingerprint
                && e.uid.is_some()
                && e.uid == cached.uid
                && match tracking {
                    Tracking::Generation => {
                        e.generation.is_some() && e.generation == cached.generation
                    }
                    Tracking::ResourceVersion => {
                        e.resource_version.is_some()
                            && e.resource_version == cached.resource_version
                    }
                }
        })
    }

    /// Whether a watch event showing `meta` is the answer to our own last write.
    pub fn is_own_write(&self, kind: &'static str, meta: &ObjectMeta) -> bool {
        if meta.deletion_timestamp.is_some() || meta.resource_version.is_none() {
            return false;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&key(kind, meta))
            .is_some_and(|e| e.uid == meta.uid && e.resource_version == meta.resource_version)
    }

    /// Forgets an object we deleted.
    pub fn forget(&self, kind: &'static str, namespace: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&(kind, namespace.to_owned(), name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: &str, generation: i64, rv: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some("s-a-worker".into()),
            namespace: Some("demo".into()),
            uid: Some(uid.into()),
            generation: Some(generation),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_deployment_is_unchanged_until_its_generation_uid_or_desired_state_moves() {
        let record = Record::default();
        let written = meta("u1", 2, "100");
        assert!(
            !record.unchanged("Deployment", &written, 7, Tracking::Generation),
            "nothing written yet"
        );
        record.remember("Deployment", &written, 7);
        assert!(record.unchanged("Deployment", &written, 7, Tracking::Generation));
        // The Deployment controller's status writes move only the resourceVersion.
        assert!(record.unchanged("Deployment", &meta("u1", 2, "105"), 7, Tracking::Generation));
        assert!(
            !record.unchanged("Deployment", &meta("u1", 3, "106"), 7, Tracking::Generation),
            "someone edited the spec"
        );
        assert!(
            !record.unchanged("Deployment", &meta("u2", 1, "107"), 7, Tracking::Generation),
            "deleted and created again by someone else"
        );
        assert!(
            !record.unchanged("Deployment", &written, 8, Tracking::Generation),
            "we want something else now"
        );
        let mut deleting = written.clone();
        deleting.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        assert!(!record.unchanged("Deployment", &deleting, 7, Tracking::Generation));
    }

    #[test]
    fn only_the_event_of_our_own_write_is_recognised_as_ours() {
        let record = Record::default();
        record.remember("Service", &meta("u1", 1, "100"), 1);
        assert!(record.is_own_write("Service", &meta("u1", 1, "100")));
        assert!(!record.is_own_write("Service", &meta("u1", 1, "101")));
        assert!(
            !record.is_own_write("Deployment", &meta("u1", 1, "100")),
            "kinds are apart"
        );
        assert!(record.unchanged(
            "Service",
            &meta("u1", 1, "100"),
            1,
            Tracking::ResourceVersion
        ));
        assert!(!record.unchanged(
            "Service",
            &meta("u1", 1, "101"),
            1,
            Tracking::ResourceVersion
        ));
        record.forget("Service", "demo", "s-a-worker");
        assert!(!record.is_own_write("Service", &meta("u1", 1, "100")));
    }
}
