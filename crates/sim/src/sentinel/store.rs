//! What a Sentinel workspace holds: one current version per STIX id. STIX 2.1 versioning: a
//! later `modified` is a new version and replaces the stored one, the same `modified` is the same
//! version (a duplicate), an earlier one is stale. A revoked object is final: STIX, and the
//! upload page's `revoked` row, say no later version may be created.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::microsoft::stamp::{self, Stamp};

#[derive(Clone, Debug, Serialize)]
pub struct Stored {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub modified: String,
    pub revoked: bool,
    /// Versions accepted for this id (1 for an object never updated).
    pub versions: u32,
    pub sourcesystem: String,
    /// The current version as it was uploaded.
    pub object: Value,
    #[serde(skip)]
    stamp: Stamp,
}

/// What an upload of one object did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    New,
    Updated,
    /// Same id and `modified`, same content: nothing changes.
    Duplicate,
    /// Same id and `modified` but other content: a client bug (a change needs a new
    /// `modified`). The stored version stays.
    Conflict,
    /// An earlier `modified` than the stored one: ignored.
    Stale,
    /// A later, unrevoked version of a revoked object: refused.
    RevokedIsFinal,
}

/// Counts per outcome, for the inspection endpoint.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub new: u64,
    pub updated: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub stale: u64,
    pub revoked_is_final: u64,
}

#[derive(Debug, Default)]
pub struct Workspace {
    objects: BTreeMap<String, Stored>,
    pub counts: Counts,
}

impl Workspace {
    /// Stores a validated object (it has a string `id`, `type` and a valid `modified`).
    pub fn put(&mut self, object: &Value, sourcesystem: &str) -> Outcome {
        let text = |name: &str| object.get(name).and_then(Value::as_str).unwrap_or_default();
        let (id, modified) = (text("id"), text("modified"));
        let stamp = stamp::parse(modified, true).unwrap_or_default();
        let revoked = object
            .get("revoked")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let outcome = match self.objects.get(id) {
            None => Outcome::New,
            Some(old) if stamp < old.stamp => Outcome::Stale,
            Some(old) if stamp == old.stamp && old.object == *object => Outcome::Duplicate,
            Some(old) if stamp == old.stamp => Outcome::Conflict,
            Some(old) if old.revoked && !revoked => Outcome::RevokedIsFinal,
            Some(_) => Outcome::Updated,
        };
        let counter = match outcome {
            Outcome::New => &mut self.counts.new,
            Outcome::Updated => &mut self.counts.updated,
            Outcome::Duplicate => &mut self.counts.duplicates,
            Outcome::Conflict => &mut self.counts.conflicts,
            Outcome::Stale => &mut self.counts.stale,
            Outcome::RevokedIsFinal => &mut self.counts.revoked_is_final,
        };
        *counter += 1;
        if matches!(outcome, Outcome::New | Outcome::Updated) {
            let versions = self.objects.get(id).map_or(0, |old| old.versions) + 1;
            self.objects.insert(
                id.to_owned(),
                Stored {
                    id: id.to_owned(),
                    kind: text("type").to_owned(),
                    modified: modified.to_owned(),
                    revoked,
                    versions,
                    sourcesystem: sourcesystem.to_owned(),
                    object: object.clone(),
                    stamp,
                },
            );
        }
        outcome
    }

    /// Every stored object, by id.
    pub fn objects(&self) -> impl Iterator<Item = &Stored> {
        self.objects.values()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(modified: &str, name: &str, revoked: bool) -> Value {
        json!({"type": "threat-actor", "id": "threat-actor--dfaa8d77-07e2-4e28-b2c8-92e9f7b04428",
               "created": "2014-11-19T23:39:03.893Z", "modified": modified, "name": name,
               "revoked": revoked})
    }

    #[test]
    fn stix_versioning() {
        let mut w = Workspace::default();
        let v1 = version("2015-01-01T00:00:00Z", "a", false);
        assert_eq!(w.put(&v1, "s"), Outcome::New);
        assert_eq!(w.put(&v1, "s"), Outcome::Duplicate);
        assert_eq!(
            w.put(&version("2015-01-01T00:00:00Z", "b", false), "s"),
            Outcome::Conflict
        );
        assert_eq!(
            w.put(&version("2014-01-01T00:00:00Z", "c", false), "s"),
            Outcome::Stale
        );
        // Finer fractional digits are later.
        assert_eq!(
            w.put(&version("2015-01-01T00:00:00.001Z", "d", false), "s"),
            Outcome::Updated
        );
        assert_eq!(
            w.put(&version("2016-01-01T00:00:00Z", "e", true), "s"),
            Outcome::Updated
        );
        assert_eq!(
            w.put(&version("2017-01-01T00:00:00Z", "f", false), "s"),
            Outcome::RevokedIsFinal
        );
        assert_eq!(w.len(), 1);
        let stored = w.objects().next().expect("one object");
        assert!(stored.revoked);
        assert_eq!(stored.versions, 3);
        assert_eq!(stored.object["name"], "e");
        assert_eq!(w.counts.duplicates, 1);
        assert_eq!(w.counts.conflicts, 1);
    }
}
