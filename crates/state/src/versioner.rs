//! Gives every mapped object its version from the state store (reference `stix-taxii.md` §3.5):
//! unchanged content keeps its `created` and `modified`; changed content keeps its id and
//! `created` and gets a strictly later `modified`; what the source stopped listing is revoked.
//!
//! Versions are dated from the source, never the clock: a new version's `modified` is the later of
//! the source's date and one millisecond after the stored version. The same source and the same
//! store therefore give the same bytes, so a run killed and repeated sends exactly what an
//! uninterrupted run sends, and anything sent twice is an exact duplicate.

use std::collections::HashSet;
use std::sync::Arc;

use ctiport_model::record::{
    Emitted, Mapped, Membership, ObservableType, RecordKind, Revocation, Version,
};
use ctiport_model::stix::{self, EncodedObject, is_sco_type};
use ctiport_model::timestamp::Timestamp;
use sha2::{Digest as _, Sha256};

use crate::crash::{CrashPoint, MAPPING_CRASH_PROFILES, crash_point};
use crate::delivery::Position;
use crate::error::StateError;
use crate::restamp::{self, Stamp};
use crate::store::{Key, Row, Store};

/// What the versioner did in this run, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VersionCounts {
    /// Objects the store had never seen.
    pub new: u64,
    /// Objects whose content changed: same id and `created`, later `modified`.
    pub changed: u64,
    pub unchanged: u64,
    /// Objects revoked in this run because the source no longer lists them.
    pub revoked: u64,
}

/// Which revocations a run may make: a run that did not look at everything must not revoke what
/// it did not see.
#[derive(Clone, Copy, Debug, Default)]
pub struct Coverage {
    /// `--source`, `--artifact-type`, `--seen-since` or `--min-reputation`: a profile's listing
    /// is incomplete, so nothing is revoked.
    pub indicators_filtered: bool,
    /// `--kind` or `--profile`: profiles not listed may still exist.
    pub profiles_selected: bool,
}

/// Why revocation was held back in a run, for the summary; `None` when it ran in full.
pub type Held = Option<String>;

/// Profiles named in the log when their listing was incomplete (all are counted).
const NAMED_PROFILES: u64 = 20;

/// The profile whose listing the source is going through.
struct OpenProfile {
    id: String,
    /// Its key in the store (`profiles.profile`).
    key: i64,
    /// A line of this profile's listing could not be read: its listing is incomplete.
    incomplete: bool,
    /// The objects of this profile's listing seen so far; what it owned before and is not here
    /// when the listing ends is revoked. Bounded by the largest profile, not by the run.
    listed: HashSet<Arc<str>>,
}

/// One run of the store: versions what the mapping emits, revokes what the source stopped
/// listing, and records what each sink acknowledged. Made by [`Versioner::begin_run`].
pub struct Versioner {
    store: Store,
    run: u32,
    /// The store had no object when the run began (a first run): new objects are inserted
    /// without looking them up first.
    fresh: bool,
    coverage: Coverage,
    open: Option<OpenProfile>,
    /// A profile, line or file was rejected: some profile may be missing from the listing.
    listing_incomplete: bool,
    /// Profiles whose listing had an unreadable line, so that nothing of them was revoked.
    incomplete_profiles: u64,
    /// The source failed: what it did not reach was not looked at.
    source_failed: bool,
    /// Profile records versioned so far (for [`CrashPoint::Mapping`]).
    profiles_versioned: u64,
    counts: VersionCounts,
}

fn digest(json: &str) -> Vec<u8> {
    Sha256::digest(json.as_bytes())[..16].to_vec()
}

/// Objects that belong to one profile's listing (revoked when it stops listing them); locations,
/// sector identities and the producer are shared, and indicators go when no profile lists them.
fn owned_by_profile(object_type: &str) -> bool {
    !matches!(object_type, "location" | "identity" | "marking-definition")
        && !is_sco_type(object_type)
        && object_type != "indicator"
}

impl Versioner {
    /// Begins a run on `store` at `started`, which may revoke what `coverage` allows.
    pub fn begin_run(
        mut store: Store,
        started: &Timestamp,
        coverage: Coverage,
    ) -> Result<Versioner, StateError> {
        let run = store
            .begin_run(&started.to_string())
            .map_err(|e| format!("state file {}: {e}", store.file()))?;
        Ok(Versioner::new(store, run, coverage))
    }

    fn new(store: Store, run: u32, coverage: Coverage) -> Self {
        Versioner {
            fresh: store.was_empty(),
            store,
            run,
            coverage,
            open: None,
            listing_incomplete: false,
            incomplete_profiles: 0,
            source_failed: false,
            profiles_versioned: 0,
            counts: VersionCounts::default(),
        }
    }

    /// The run's number in the store.
    pub fn run(&self) -> u32 {
        self.run
    }

    /// What the run did to the versions so far.
    pub fn counts(&self) -> &VersionCounts {
        &self.counts
    }

    /// Where the sink named `sink` stands: the last run it acknowledged. `full` (`--full`) asks
    /// for the current state again.
    pub fn position(&self, sink: &str, full: bool) -> Result<Position, StateError> {
        Ok(Position {
            stateful: true,
            acked: self.store.acked_run(sink)?,
            full,
        })
    }

    /// Versions the objects every output starts with.
    pub fn version_preamble(
        &mut self,
        preamble: Vec<EncodedObject>,
    ) -> Result<Vec<Emitted>, StateError> {
        preamble
            .into_iter()
            .map(|object| {
                let mut emitted = Emitted {
                    object,
                    first: true,
                    version: Version::default(),
                };
                self.version_object(&mut emitted, None)?;
                Ok(emitted)
            })
            .collect()
    }

    /// Versions one mapped record in place: every object gets its version, and a repeat or an
    /// unchanged object the JSON of its stored version.
    pub fn version(&mut self, mapped: &mut Mapped) -> Result<(), StateError> {
        match mapped {
            Mapped::Profile(profile) => {
                self.close_profile()?;
                let key = self.store.profile_listed(&profile.profile_id, self.run)?;
                let mut open = OpenProfile {
                    id: profile.profile_id.clone(),
                    key,
                    incomplete: false,
                    listed: HashSet::new(),
                };
                for emitted in &mut profile.objects {
                    let owned = owned_by_profile(&emitted.object.object_type);
                    self.version_object(emitted, owned.then_some(key))?;
                    if owned {
                        open.listed.insert(emitted.object.id.clone());
                    }
                }
                self.open = Some(open);
            }
            Mapped::Indicator(indicator) => {
                let profile = match &self.open {
                    Some(open) if open.id == indicator.profile_id => open.key,
                    _ => self.store.profile_key(&indicator.profile_id)?,
                };
                // The record's indicator comes before its relationship.
                let mut indicator_key = None;
                for emitted in &mut indicator.objects {
                    let is_relationship = &*emitted.object.object_type == "relationship";
                    let owner = is_relationship.then_some(profile);
                    let (key, stored_now) = self.version_object(emitted, owner)?;
                    if *emitted.object.id == *indicator.stix_id {
                        indicator_key = Some(key);
                    }
                    if stored_now && is_relationship {
                        let indicator_key = match indicator_key {
                            Some(key) => key,
                            None => {
                                self.store
                                    .lookup(&indicator.stix_id)?
                                    .ok_or_else(|| format!("{} is not stored", indicator.stix_id))?
                                    .key
                            }
                        };
                        self.store.remember_membership(
                            key,
                            indicator_key,
                            indicator.observable_type.as_str(),
                            &indicator.value,
                        )?;
                    }
                    if let (true, Some(open)) = (is_relationship, &mut self.open) {
                        open.listed.insert(emitted.object.id.clone());
                    }
                }
            }
            Mapped::Revoked(_) => {}
        }
        self.store.maybe_commit()?;
        if let Mapped::Profile(_) = mapped {
            self.profiles_versioned += 1;
            if self.profiles_versioned == MAPPING_CRASH_PROFILES && CrashPoint::Mapping.requested()
            {
                // Committed first, so that the crash leaves part of the run's versions stored.
                let _ = self.store.commit();
                crash_point(CrashPoint::Mapping);
            }
        }
        Ok(())
    }

    /// A record the run could not map. An indicator record was read, and its value is not a
    /// usable indicator any more: what it was before is revoked like anything no longer listed.
    /// A profile, or a line or file that could not be read at all, may have been anything: the
    /// listing around it is incomplete, and nothing it might have held is revoked.
    pub fn rejected(&mut self, kind: RecordKind) -> Result<(), StateError> {
        match kind {
            RecordKind::Indicator => {}
            RecordKind::Profile => {
                // A profile record ends the listing of the one before it.
                self.close_profile()?;
                self.listing_incomplete = true;
            }
            RecordKind::Line | RecordKind::File => {
                if let Some(open) = &mut self.open {
                    open.incomplete = true;
                }
                self.listing_incomplete = true;
            }
        }
        Ok(())
    }

    /// Versions one object; returns its key in the store and whether this run stored a new
    /// version (or the first one).
    fn version_object(
        &mut self,
        emitted: &mut Emitted,
        owner: Option<i64>,
    ) -> Result<(Key, bool), String> {
        let id = emitted.object.id.clone();
        let dated = !is_sco_type(&emitted.object.object_type);
        if self.fresh && emitted.first {
            // The store was empty when this run began, so it holds only what this run stored,
            // and the mapping meets this object for the first time in the run: it is new. The
            // insert checks that in the same probe of the index a lookup would take; should it
            // find the object stored after all, the lookup below decides as in any run.
            let hash = digest(&emitted.object.json);
            let first = Row {
                id: &id,
                hash: &hash,
                revoked: false,
                version_run: self.run,
                origin_run: self.run,
                owner,
                restamped: false,
                json: dated.then_some(&*emitted.object.json),
            };
            if let Some(key) = self.store.insert(&first)? {
                self.counts.new += 1;
                emitted.version = Version {
                    run: self.run,
                    origin: self.run,
                };
                return Ok((key, true));
            }
        }
        let stored = self.store.lookup(&id)?;
        if let (false, Some(stored)) = (emitted.first, &stored) {
            // A repeat within this run: exactly the version its first occurrence got.
            emitted.version = Version {
                run: stored.version_run,
                origin: stored.origin_run,
            };
            if dated && let Some(json) = self.store.json(stored.key)? {
                emitted.object.json = json.into();
            }
            return Ok((stored.key, false));
        }
        let mapped_json = emitted.object.json.clone();
        let hash = digest(&mapped_json);
        let key = stored.as_ref().map(|s| s.key);
        let (json, version) = match stored {
            Some(stored) if stored.hash == hash && !stored.revoked => {
                self.counts.unchanged += 1;
                emitted.version = Version {
                    run: stored.version_run,
                    origin: stored.origin_run,
                };
                // The emitted version differs from the mapping's (a later `modified`): reuse it.
                if stored.restamped
                    && let Some(json) = self.store.json(stored.key)?
                {
                    emitted.object.json = json.into();
                }
                return Ok((stored.key, false));
            }
            Some(stored) => {
                // Changed, or listed again after a revocation: a later version of the same object.
                let json = match (dated, self.store.json(stored.key)?) {
                    (true, Some(previous)) => Some(self.next_version(&mapped_json, &previous)?),
                    _ => None,
                };
                self.counts.changed += 1;
                let version = Version {
                    run: self.run,
                    origin: stored.origin_run,
                };
                (json, version)
            }
            None => {
                self.counts.new += 1;
                let version = Version {
                    run: self.run,
                    origin: self.run,
                };
                (None, version)
            }
        };
        let restamped = json.as_deref().is_some_and(|json| json != &*mapped_json);
        if let Some(json) = json {
            emitted.object.json = Arc::from(json);
        }
        emitted.version = version;
        let key = self.store.put(
            key,
            &Row {
                id: &id,
                hash: &hash,
                revoked: false,
                version_run: version.run,
                origin_run: version.origin,
                owner,
                restamped,
                json: dated.then_some(&*emitted.object.json),
            },
        )?;
        Ok((key, true))
    }

    /// The mapped object as the version after `previous`.
    fn next_version(&self, mapped: &str, previous: &str) -> Result<String, String> {
        let now = restamp::read(mapped)?;
        let before = restamp::read(previous)?;
        let modified = match (now.modified, before.modified) {
            (Some(now), Some(before)) => Some(now.max(before.next_millisecond())),
            (now, _) => now,
        };
        let stamp = Stamp {
            created: before.created.or(now.created),
            modified,
            revoked: false,
        };
        if stamp == now {
            return Ok(mapped.to_owned());
        }
        restamp::apply(mapped, &stamp)
    }

    /// Revokes the current version of the object in row `key`; an `indicates` that was the last
    /// to list its indicator takes the indicator with it.
    fn revoke(&mut self, key: Key) -> Result<(), String> {
        let Some(json) = self.store.json(key)? else {
            return Ok(());
        };
        let before = restamp::read(&json)?;
        let stamp = Stamp {
            created: before.created,
            modified: before.modified.map(|m| m.next_millisecond()),
            revoked: true,
        };
        let revoked = restamp::apply(&json, &stamp)?;
        self.store.revoke(key, &revoked, self.run)?;
        self.counts.revoked += 1;
        if let Some(indicator) = self.store.membership_indicator(key)?
            && !self.store.still_listed(indicator)?
            && self.store.current(indicator)?
        {
            self.revoke(indicator)?;
        }
        self.store.maybe_commit()
    }

    /// The open profile's listing is complete: what it listed before and no longer does is
    /// revoked.
    fn close_profile(&mut self) -> Result<(), String> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        if self.coverage.indicators_filtered {
            return Ok(());
        }
        if open.incomplete {
            self.incomplete_profiles += 1;
            if self.incomplete_profiles <= NAMED_PROFILES {
                tracing::warn!(profile = %open.id, "a line of this profile's listing could not be read, so nothing of it was revoked");
            }
            return Ok(());
        }
        for (key, id) in self.store.owned(open.key)? {
            if !open.listed.contains(id.as_str()) {
                self.revoke(key)?;
            }
        }
        Ok(())
    }

    /// The source finished. With a complete listing, profiles it no longer lists (and the
    /// indicators only they listed) are revoked; returns why any revocation was held back.
    pub fn finish_listing(&mut self, source_complete: bool) -> Result<Held, StateError> {
        let mut held = Vec::new();
        if !source_complete {
            self.source_failed = true;
            self.open = None;
            self.store.commit()?;
            return Ok(Some(
                "the source failed, so nothing was revoked for profiles it had not finished".into(),
            ));
        }
        self.close_profile()?;
        if self.incomplete_profiles > 0 {
            held.push(format!(
                "{} profile(s) had an unreadable line in their listing, so nothing of them was revoked",
                self.incomplete_profiles
            ));
        }
        if self.coverage.indicators_filtered {
            held.push(
                "indicator filters narrow every profile's listing, so nothing was revoked".into(),
            );
        } else if self.coverage.profiles_selected {
            held.push(
                "--kind/--profile select profiles, so unlisted profiles were not revoked".into(),
            );
        } else if self.listing_incomplete {
            held.push(
                "a record of the listing could not be read, so unlisted profiles were not revoked"
                    .into(),
            );
        } else {
            for profile in self.store.unlisted_profiles(self.run)? {
                for (key, _) in self.store.owned(profile)? {
                    self.revoke(key)?;
                }
            }
        }
        self.store.commit()?;
        Ok((!held.is_empty()).then(|| held.join("; ")))
    }

    /// Whether this run listed everything the store holds: no filter, no selection, nothing
    /// unreadable, a source that finished. Only then has a sink that took this run's stream
    /// every version, including those of interrupted runs before it.
    fn listed_everything(&self) -> bool {
        !(self.source_failed
            || self.coverage.indicators_filtered
            || self.coverage.profiles_selected
            || self.listing_incomplete
            || self.incomplete_profiles > 0)
    }

    /// Whether a sink that acknowledged `after` may lack versions this run did not carry.
    pub fn may_lack_versions(&self, after: Option<u32>) -> Result<bool, StateError> {
        if self.listed_everything() {
            return Ok(false);
        }
        Ok(self.store.versions_between(after, self.run)?)
    }

    /// Revocations made after run `after` (this run's and those a lagging sink has not
    /// acknowledged), one record each, in the order they were made.
    pub fn revocations_after(
        &self,
        after: u32,
        mut each: impl FnMut(Mapped),
    ) -> Result<(), StateError> {
        Ok(self.store.revocations_after(after, |revocable| {
            let membership = revocable.membership.and_then(
                |(profile_id, indicator_stix_id, observable_type, value)| {
                    Some(Membership {
                        profile_id,
                        indicator_stix_id,
                        observable_type: ObservableType::parse(&observable_type)?,
                        value,
                    })
                },
            );
            let object_type = revocable
                .id
                .split("--")
                .next()
                .unwrap_or_default()
                .to_owned();
            each(Mapped::Revoked(Revocation {
                object: Emitted {
                    object: EncodedObject {
                        references: references(&revocable.json).into(),
                        id: revocable.id.into(),
                        object_type: object_type.into(),
                        json: revocable.json.into(),
                    },
                    first: true,
                    version: Version {
                        run: revocable.version_run,
                        origin: revocable.origin_run,
                    },
                },
                membership,
            }));
            Ok(())
        })?)
    }

    /// Records that `sink` holds every version up to this run (it committed this run's output).
    pub fn acknowledge(&mut self, sink: &str, at: &Timestamp) -> Result<(), StateError> {
        Ok(self.store.acknowledge(sink, self.run, &at.to_string())?)
    }

    /// Ends the run in the store: `finished`, or `failed` when the source did not complete.
    pub fn finish_run(mut self, at: &Timestamp, source_complete: bool) -> Result<(), StateError> {
        let status = if source_complete {
            "finished"
        } else {
            "failed"
        };
        Ok(self.store.finish_run(self.run, &at.to_string(), status)?)
    }
}

/// The ids a stored object refers to, which a chunked writer needs to place it.
fn references(json: &str) -> Vec<String> {
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(properties)) => stix::references(&properties)
            .into_iter()
            .map(|(_, target)| target.to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, CREATED, indicator, profile};
    use proptest::prelude::*;
    use serde_json::json;

    const ID: &str = "note--4b6b6a1c-6f0e-5d3c-9a55-3f3c4c9f8f10";

    fn note(content: &str, modified: Timestamp) -> EncodedObject {
        fixtures::object(ID, &modified.to_string(), json!({"content": content}))
    }

    fn started() -> Timestamp {
        Timestamp::parse("2026-01-01T00:00:00Z").unwrap()
    }

    /// One run of the store over one object; returns the emitted version.
    fn run_once(path: &std::path::Path, object: EncodedObject) -> Emitted {
        let mut versioner =
            Versioner::begin_run(Store::open(path).unwrap(), &started(), Coverage::default())
                .unwrap();
        let emitted = versioner.version_preamble(vec![object]).unwrap().remove(0);
        versioner.finish_listing(true).unwrap();
        emitted
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        /// Whatever the sequence of contents and source dates: `created` never moves, the same
        /// content comes back byte for byte with its version, and any change gets a strictly
        /// later `modified` than the version before it.
        #[test]
        fn versions_only_move_forward(steps in prop::collection::vec((0u8..3, -5i64..5), 1..8)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.db");
            let base = Timestamp::parse("2024-01-01T00:00:00Z").unwrap();
            let mut previous: Option<(u8, i64, Emitted)> = None;
            for (content, offset) in steps {
                let source_date = Timestamp::new(
                    base.as_datetime() + chrono::TimeDelta::seconds(offset),
                );
                let emitted = run_once(&path, note(&format!("text {content}"), source_date));
                let stamp = restamp::read(&emitted.object.json).unwrap();
                prop_assert_eq!(
                    stamp.created,
                    Timestamp::parse("2020-01-01T00:00:00Z")
                );
                if let Some((last_content, last_offset, last)) = &previous {
                    let before = restamp::read(&last.object.json).unwrap();
                    if (*last_content, *last_offset) == (content, offset) {
                        prop_assert_eq!(&emitted.object.json, &last.object.json);
                        prop_assert_eq!(emitted.version, last.version);
                    } else {
                        prop_assert!(stamp.modified > before.modified);
                        prop_assert!(emitted.version.run > last.version.run);
                        prop_assert!(stamp.modified >= Some(source_date));
                    }
                }
                previous = Some((content, offset, emitted));
            }
        }
    }

    /// The insert that stands for a lookup in a first run finds an object stored already (the
    /// mapping should not hand one on as first twice): it is versioned like in any run.
    #[test]
    fn an_object_met_twice_as_first_in_a_first_run_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        assert!(store.was_empty());
        let mut versioner = Versioner::begin_run(store, &started(), Coverage::default()).unwrap();
        let object = note("text", Timestamp::parse("2024-01-01T00:00:00Z").unwrap());
        let emitted = versioner
            .version_preamble(vec![object.clone(), object])
            .unwrap();
        assert_eq!(emitted[0].object.json, emitted[1].object.json);
        assert_eq!(emitted[0].version, emitted[1].version);
        assert_eq!((versioner.counts.new, versioner.counts.unchanged), (1, 1));
        versioner.finish_listing(true).unwrap();
        drop(versioner);
        assert!(!Store::open(&path).unwrap().was_empty());
    }

    #[test]
    fn a_store_of_another_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path).unwrap());
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute("UPDATE meta SET value = '99' WHERE key = 'schema'", [])
            .unwrap();
        drop(connection);
        let error = Store::open(&path).err().unwrap().to_string();
        assert!(error.contains("schema 99"), "{error}");
    }

    /// A profile that stops listing an indicator revokes its `indicates`, and the indicator with
    /// it when no other profile lists it; a lagging sink gets every revocation, each `indicates`
    /// with the membership it ended.
    #[test]
    fn what_a_listing_dropped_is_revoked_with_its_membership() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let run = |records: Vec<Mapped>| {
            let mut versioner =
                Versioner::begin_run(Store::open(&path).unwrap(), &started(), Coverage::default())
                    .unwrap();
            for mut record in records {
                versioner.version(&mut record).unwrap();
            }
            assert_eq!(versioner.finish_listing(true).unwrap(), None);
            let mut revoked = Vec::new();
            versioner
                .revocations_after(1, |record| revoked.push(record))
                .unwrap();
            let counts = versioner.counts().clone();
            versioner.finish_run(&started(), true).unwrap();
            (counts, revoked)
        };
        let (_, revoked) = run(vec![
            profile("p", "P"),
            indicator("p", "a.example"),
            indicator("p", "b.example"),
            profile("q", "Q"),
            indicator("q", "a.example"),
        ]);
        assert!(revoked.is_empty());
        let (counts, revoked) = run(vec![
            profile("p", "P"),
            indicator("p", "a.example"),
            profile("q", "Q"),
        ]);
        assert_eq!((counts.unchanged, counts.revoked), (4, 3));
        let revoked: Vec<_> = revoked
            .iter()
            .map(|record| {
                let Mapped::Revoked(revocation) = record else {
                    panic!("{record:?}")
                };
                let json: serde_json::Value =
                    serde_json::from_str(&revocation.object.object.json).unwrap();
                assert_eq!(json["revoked"], true);
                assert_eq!(json["created"], CREATED);
                assert_eq!(json["modified"], "2020-01-01T00:00:00.001Z");
                assert_eq!(revocation.object.version, Version { run: 2, origin: 1 });
                let membership = revocation
                    .membership
                    .as_ref()
                    .map(|m| (m.profile_id.as_str(), m.value.as_str()));
                (&*revocation.object.object.id, membership)
            })
            .collect();
        assert_eq!(
            revoked,
            [
                ("indicator--b.example", None),
                ("relationship--a.example-q", Some(("q", "a.example"))),
                ("relationship--b.example-p", Some(("p", "b.example"))),
            ]
        );
    }
}
