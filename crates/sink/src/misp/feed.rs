//! `--to misp-feed:<dir>`: a MISP feed directory (`source_format: misp`) that a MISP instance
//! pulls as a local or network feed:
//!
//! ```text
//! <dir>/manifest.json      event uuid -> {Orgc, Tag, info, date, analysis, threat_level_id, timestamp}
//! <dir>/<event uuid>.json  {"Event": {…}}, one per event
//! <dir>/hashes.csv         md5 of each attribute value (as MISP stores it),event uuid
//! ```
//!
//! The driver reads like this: the records go through the [`EventBuilder`] (shared with the
//! `misp:` REST sink), and each event it completes is written at once, so memory is bounded by the
//! attribute limit, never by the size of the export.
//!
//! Files are staged in a hidden directory and moved into place when the run completes (events,
//! then `hashes.csv`, then `manifest.json`); a failed run leaves the feed as it was.
//!
//! The feed is its own memory of what a pulling MISP instance already holds: before an event file
//! is replaced, the previous one is read (one at a time) and the new event is dated against it
//! ([`merge`]): attributes the profile no longer lists stay in the file with `"deleted": true`,
//! and whatever changed gets newer timestamps, event included, so MISP takes the change; an
//! unchanged event is written byte for byte as before. An extension event that a shrunk profile
//! no longer fills is kept, all its attributes deleted.
//!
//! With a state store (`--state`), a profile the source stopped listing altogether (a vanished
//! profile: the store revokes its memberships, see [`EventBuilder::vanished`]) keeps its event
//! files too, written again with every attribute deleted and listed in the manifest, so that a
//! pulling MISP retracts them. Such a retired file (every attribute deleted) stays in later runs
//! of a sink the store has acknowledged, as it is, until the profile is listed again and its
//! event is dated against it. Other event files of an earlier export that this one no longer
//! lists (profiles no longer exported, all event files of unlisted profiles without a state
//! store) are removed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;
use md5::{Digest, Md5};
use uuid::Uuid;

use super::builder::EventBuilder;
use super::config::MispOptions;
use super::event::{Event, EventDocument, ManifestEntry, OwnedEventDocument};
use super::merge::merge;
use super::uuid::event_uuid;
use crate::atomic::io_error;
use crate::io_adapter::{AtomicWriter, csv_error};
use crate::{Sink, SinkError, SinkReport};

const MANIFEST: &str = "manifest.json";
const HASHES: &str = "hashes.csv";

pub struct MispFeedSink {
    directory: PathBuf,
    staging: PathBuf,
    builder: EventBuilder,
    hashes: Option<::csv::Writer<AtomicWriter>>,
    manifest: BTreeMap<String, ManifestEntry>,
    staged_events: Vec<String>,
    attributes: u64,
    /// The last run of the state store this sink acknowledged (`--state`); `None` without one.
    acknowledged: Option<u32>,
    retired: Retired,
    committed: bool,
}

/// Event files of vanished profiles written with every attribute deleted in this run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Retired {
    profiles: u64,
    events: u64,
    /// Attributes live in the previous file and deleted now.
    attributes: u64,
}

impl MispFeedSink {
    pub fn create(directory: &Path, options: MispOptions) -> Result<Self, SinkError> {
        let builder = EventBuilder::new(options)?;
        let staging = directory.join(format!(".staging-misp-{}", std::process::id()));
        fs::create_dir_all(&staging).map_err(io_error(&staging))?;
        let hashes_path = staging.join(HASHES);
        // MISP splits hashes.csv on "\n" (Feed::getCache): no header, LF line ends.
        let hashes = ::csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_writer(AtomicWriter::create(&hashes_path)?);
        Ok(MispFeedSink {
            directory: directory.to_owned(),
            staging,
            builder,
            hashes: Some(hashes),
            manifest: BTreeMap::new(),
            staged_events: Vec::new(),
            attributes: 0,
            acknowledged: None,
            retired: Retired::default(),
            committed: false,
        })
    }

    /// Writes `built` in place of the event's previous file, if any, dated against it.
    fn write_event(&mut self, built: Event) -> Result<(), SinkError> {
        let event = match previous_event(&self.directory, &built.uuid) {
            Some(previous) => merge(&previous, built),
            None => built,
        };
        self.write_file(&event)
    }

    fn write_file(&mut self, event: &Event) -> Result<(), SinkError> {
        let name = format!("{}.json", event.uuid);
        let path = self.staging.join(&name);
        let mut file = AtomicWriter::create(&path)?;
        serde_json::to_writer_pretty(&mut file, &EventDocument { event })
            .map_err(|e| SinkError::Other(format!("{}: {e}", path.display())))?;
        std::io::Write::write_all(&mut file, b"\n").map_err(io_error(&path))?;
        file.commit()?;
        if let Some(hashes) = self.hashes.as_mut() {
            let hashes_path = self.staging.join(HASHES);
            // MISP's correlation cache: what the event holds, not what it retracts.
            for attribute in event.attributes.iter().filter(|a| !a.deleted) {
                let digest = format!("{:x}", Md5::digest(attribute.value.as_bytes()));
                hashes
                    .write_record([digest.as_str(), event.uuid.as_str()])
                    .map_err(|e| csv_error(&hashes_path, e))?;
            }
        }
        self.attributes += event.attributes.iter().filter(|a| !a.deleted).count() as u64;
        self.manifest
            .insert(event.uuid.clone(), ManifestEntry::of(event));
        self.staged_events.push(name);
        Ok(())
    }

    /// Extension events beyond a profile's last part that an earlier, larger export wrote: their
    /// attributes left the profile, so each is written again with all of them deleted.
    fn retire_stale_extensions(&mut self) -> Result<(), SinkError> {
        for (profile_id, parts) in self.builder.parts() {
            for part in parts + 1.. {
                let Some(empty) = self.builder.empty_part(&profile_id, part) else {
                    break;
                };
                if !event_path(&self.directory, &empty.uuid).exists() {
                    break;
                }
                if let Some(previous) = previous_event(&self.directory, &empty.uuid) {
                    self.write_file(&merge(&previous, empty))?;
                }
            }
        }
        Ok(())
    }

    /// The event files of profiles that vanished from the source (known from the state store's
    /// revocations): each part that the feed holds, from the main event on, is written again with
    /// every attribute deleted, header, tags and report as the file has them (the run knows
    /// nothing else of a profile it did not list), instead of being removed.
    fn retire_vanished(&mut self) -> Result<(), SinkError> {
        for profile_id in self.builder.vanished() {
            let mut retired = false;
            for part in 1.. {
                let uuid = event_uuid(&profile_id, part).to_string();
                if !event_path(&self.directory, &uuid).exists() {
                    break;
                }
                let Some(previous) = previous_event(&self.directory, &uuid) else {
                    continue;
                };
                let live = previous.attributes.iter().filter(|a| !a.deleted).count() as u64;
                let event = merge(&previous, EventBuilder::emptied(&previous));
                self.write_file(&event)?;
                self.retired.events += 1;
                self.retired.attributes += live;
                retired = true;
            }
            if retired {
                self.retired.profiles += 1;
            }
        }
        let r = self.retired;
        if r.events > 0 {
            tracing::info!(
                directory = %self.directory.display(),
                profiles = r.profiles,
                events = r.events,
                retracted = r.attributes,
                "MISP feed: {} event(s) of {} profile(s) the source no longer lists kept with \
                 every attribute deleted; {} attribute(s) marked deleted",
                r.events,
                r.profiles,
                r.attributes
            );
        }
        Ok(())
    }

    /// With a state store: event files of earlier retirements (every attribute deleted) that this
    /// export does not list stay in the feed and its manifest, as they are, so that a MISP that
    /// pulls late still retracts, and a profile listed again is dated against its retirement.
    fn keep_retired_events(&mut self) {
        if self.acknowledged.is_none() {
            return;
        }
        let Ok(entries) = fs::read_dir(&self.directory) else {
            return;
        };
        // One file at a time; the manifest keeps only its entry.
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(uuid) = event_file_uuid(&name) else {
                continue;
            };
            if self.manifest.contains_key(uuid) {
                continue;
            }
            if let Some(event) = previous_event(&self.directory, uuid)
                && is_retired(&event)
            {
                self.manifest
                    .insert(event.uuid.clone(), ManifestEntry::of(&event));
            }
        }
    }

    fn commit_staged(&mut self) -> Result<Vec<String>, SinkError> {
        let hashes_path = self.staging.join(HASHES);
        if let Some(hashes) = self.hashes.take() {
            hashes
                .into_inner()
                .map_err(|e| SinkError::Other(format!("{}: {}", hashes_path.display(), e.error())))?
                .commit()?;
        }
        let manifest_path = self.staging.join(MANIFEST);
        let mut manifest = AtomicWriter::create(&manifest_path)?;
        serde_json::to_writer_pretty(&mut manifest, &self.manifest)
            .map_err(|e| SinkError::Other(format!("{}: {e}", manifest_path.display())))?;
        std::io::Write::write_all(&mut manifest, b"\n").map_err(io_error(&manifest_path))?;
        manifest.commit()?;

        let mut files = Vec::new();
        let names = self
            .staged_events
            .iter()
            .map(String::as_str)
            .chain([HASHES, MANIFEST]);
        for name in names {
            let destination = self.directory.join(name);
            fs::rename(self.staging.join(name), &destination).map_err(io_error(&destination))?;
            files.push(destination.display().to_string());
        }
        remove_stale_events(&self.directory, &self.manifest);
        Ok(files)
    }
}

impl Sink for MispFeedSink {
    fn begin(&mut self, _preamble: &[EncodedObject]) -> Result<(), SinkError> {
        Ok(())
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        for built in self.builder.add(record)? {
            self.write_event(built)?;
        }
        Ok(())
    }

    fn delivery(&self) -> crate::Delivery {
        crate::Delivery::Snapshot
    }

    fn acknowledged(&mut self, run: Option<u32>) {
        self.acknowledged = run;
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReport, SinkError> {
        if let Some(built) = self.builder.finish()? {
            self.write_event(built)?;
        }
        self.retire_stale_extensions()?;
        self.retire_vanished()?;
        self.keep_retired_events();
        let files = self.commit_staged()?;
        self.committed = true;
        let _ = fs::remove_dir_all(&self.staging);
        Ok(SinkReport {
            objects: self.attributes,
            files,
            ..SinkReport::default()
        })
    }
}

impl Drop for MispFeedSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

fn event_path(directory: &Path, uuid: &str) -> PathBuf {
    directory.join(format!("{uuid}.json"))
}

/// The event's file in the feed as the previous export left it: `None` when there is none, or
/// when it cannot be read as an event of that uuid (a warning names it; the event is then written
/// as if new).
fn previous_event(directory: &Path, uuid: &str) -> Option<Event> {
    let path = event_path(directory, uuid);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "MISP feed: cannot read the previous event file {}: {e}; treated as absent",
                path.display()
            );
            return None;
        }
    };
    match serde_json::from_slice::<OwnedEventDocument>(&bytes) {
        Ok(document) if document.event.uuid == uuid => Some(document.event),
        Ok(document) => {
            tracing::warn!(
                "MISP feed: the previous event file {} holds event {}; treated as absent",
                path.display(),
                document.event.uuid
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                "MISP feed: cannot parse the previous event file {}: {e}; treated as absent",
                path.display()
            );
            None
        }
    }
}

/// The event uuid of a `<uuid>.json` event file name (lower-case, hyphenated), or `None`.
fn event_file_uuid(name: &str) -> Option<&str> {
    let stem = name.strip_suffix(".json")?;
    Uuid::try_parse(stem)
        .is_ok_and(|u| u.to_string() == stem)
        .then_some(stem)
}

/// Whether an event is a retirement: it has attributes, and every one is deleted.
fn is_retired(event: &Event) -> bool {
    !event.attributes.is_empty() && event.attributes.iter().all(|a| a.deleted)
}

/// Removes `<uuid>.json` event files of an earlier export that this manifest no longer lists
/// (other files in the directory are left alone).
fn remove_stale_events(directory: &Path, manifest: &BTreeMap<String, ManifestEntry>) {
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if event_file_uuid(&name).is_some_and(|uuid| !manifest.contains_key(uuid)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::misp::config::Distribution;
    use crate::misp::uuid::event_uuid;
    use ctiport_model::graph::ProfileKind;
    use ctiport_model::record::ObservableType;
    use serde_json::Value;

    fn options(max_attributes: usize) -> MispOptions {
        fixtures::misp_options(Distribution::Community, max_attributes)
    }

    fn profile(id: &str, title: &str, kind: ProfileKind) -> Mapped {
        Mapped::Profile(fixtures::profile(id, title, kind))
    }

    use fixtures::indicator;

    fn run(directory: &Path, records: &[Mapped], max_attributes: usize) -> SinkReport {
        run_acked(directory, records, max_attributes, None)
    }

    /// A run with a state store whose last run this sink acknowledged was `acked`.
    fn run_acked(
        directory: &Path,
        records: &[Mapped],
        max_attributes: usize,
        acked: Option<u32>,
    ) -> SinkReport {
        let mut sink = Box::new(MispFeedSink::create(directory, options(max_attributes)).unwrap());
        sink.acknowledged(acked);
        sink.begin(&[]).unwrap();
        for record in records {
            sink.write(record).unwrap();
        }
        sink.finish().unwrap()
    }

    fn read(path: PathBuf) -> Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn writes_one_event_per_profile_with_manifest_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            profile("actor-1", "Aqua Blizzard", ProfileKind::Actor),
            indicator("actor-1", "i1", ObservableType::Ipv4, "198.51.100.7"),
            indicator("actor-1", "i2", ObservableType::Domain, "bücher.example"),
            profile("tool-1", "Mimikatz", ProfileKind::Tool),
            indicator("tool-1", "i3", ObservableType::Ipv4, "198.51.100.7"),
        ];
        let report = run(dir.path(), &records, 100);
        assert_eq!(report.objects, 3);
        let actor = event_uuid("actor-1", 1).to_string();
        let tool = event_uuid("tool-1", 1).to_string();
        let event = read(dir.path().join(format!("{actor}.json")));
        let event = &event["Event"];
        assert_eq!(event["info"], "Threat actor profile: Aqua Blizzard");
        assert_eq!(event["date"], "2020-02-24");
        assert_eq!(event["distribution"], "1");
        assert_eq!(event["Orgc"]["name"], "Example CTI Org");
        let tags: Vec<&str> = event["Tag"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            tags,
            ["tlp:amber", "misp-galaxy:threat-actor=\"Aqua Blizzard\""]
        );
        let attributes = event["Attribute"].as_array().unwrap();
        assert_eq!(attributes[1]["value"], "xn--bcher-kva.example");
        assert_eq!(attributes[0]["type"], "ip-dst");
        assert_eq!(event["timestamp"], "1709251200");
        assert_eq!(event["EventReport"].as_array().unwrap().len(), 1);
        // The same IP in two profiles: two attributes with different uuids.
        let tool_event = read(dir.path().join(format!("{tool}.json")));
        assert_ne!(
            tool_event["Event"]["Attribute"][0]["uuid"],
            attributes[0]["uuid"]
        );
        assert_eq!(
            tool_event["Event"]["Tag"][1]["name"],
            "misp-galaxy:tool=\"Mimikatz\""
        );
        let manifest = read(dir.path().join(MANIFEST));
        assert_eq!(manifest.as_object().unwrap().len(), 2);
        assert_eq!(manifest[&actor]["timestamp"], 1_709_251_200);
        let hashes = fs::read_to_string(dir.path().join(HASHES)).unwrap();
        let md5_ip = format!("{:x}", Md5::digest(b"198.51.100.7"));
        assert!(
            hashes.starts_with(&format!("{md5_ip},{actor}\n")),
            "{hashes}"
        );
        assert_eq!(hashes.lines().count(), 3);
        // Nothing but the feed is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[test]
    fn large_profiles_are_split_into_linked_events_and_reruns_are_identical() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = vec![profile("big", "Big", ProfileKind::Actor)];
        for n in 0..7u8 {
            records.push(indicator(
                "big",
                &format!("i{n}"),
                ObservableType::Ipv4,
                &format!("198.51.100.{n}"),
            ));
        }
        // A duplicate of an attribute already in the current part is merged, not a new one.
        records.push(indicator(
            "big",
            "dup",
            ObservableType::Ipv4,
            "198.51.100.6",
        ));
        run(dir.path(), &records, 3);
        let main = event_uuid("big", 1).to_string();
        let manifest = read(dir.path().join(MANIFEST));
        assert_eq!(manifest.as_object().unwrap().len(), 3);
        let mut counts = 0;
        for part in 1..=3 {
            let uuid = event_uuid("big", part).to_string();
            let event = read(dir.path().join(format!("{uuid}.json")));
            let event = &event["Event"];
            counts += event["Attribute"].as_array().unwrap().len();
            if part == 1 {
                assert_eq!(event["extends_uuid"], "");
                assert!(event.get("EventReport").is_some());
            } else {
                assert_eq!(event["extends_uuid"], main.as_str());
                assert_eq!(
                    event["info"],
                    format!("Threat actor profile: Big (part {part})")
                );
                assert!(event.get("EventReport").is_none());
            }
        }
        assert_eq!(counts, 7);
        let before: Vec<(String, Vec<u8>)> = snapshot(dir.path());
        run(dir.path(), &records, 3);
        assert_eq!(before, snapshot(dir.path()));
        // A smaller re-export keeps the extension events it no longer fills, every attribute
        // deleted, so that a MISP instance that pulled them retracts them.
        let previous_part_2 = read(dir.path().join(format!("{}.json", event_uuid("big", 2))));
        run(dir.path(), &records[..3], 3);
        let manifest = read(dir.path().join(MANIFEST));
        assert_eq!(manifest.as_object().unwrap().len(), 3);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 5);
        for part in 2..=3 {
            let uuid = event_uuid("big", part).to_string();
            let event = read(dir.path().join(format!("{uuid}.json")));
            let event = &event["Event"];
            let attributes = event["Attribute"].as_array().unwrap();
            assert_eq!(attributes.len(), if part == 2 { 3 } else { 1 });
            assert!(attributes.iter().all(|a| a["deleted"] == true));
            assert!(
                attributes
                    .iter()
                    .all(|a| a["timestamp"] == event["timestamp"])
            );
            assert_eq!(
                seconds(&manifest[&uuid]["timestamp"]),
                seconds(&event["timestamp"])
            );
            assert_eq!(event["extends_uuid"], main.as_str());
        }
        let part_2 = read(dir.path().join(format!("{}.json", event_uuid("big", 2))));
        assert!(
            seconds(&part_2["Event"]["timestamp"])
                > seconds(&previous_part_2["Event"]["timestamp"])
        );
        let event = read(dir.path().join(format!("{main}.json")));
        let deleted: Vec<bool> = event["Event"]["Attribute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["deleted"].as_bool().unwrap())
            .collect();
        assert_eq!(deleted, [false, false, true]);
        let hashes = fs::read_to_string(dir.path().join(HASHES)).unwrap();
        assert_eq!(hashes.lines().count(), 2);
        // Again: the same bytes.
        let before = snapshot(dir.path());
        let report = run(dir.path(), &records[..3], 3);
        assert_eq!(report.objects, 2);
        assert_eq!(before, snapshot(dir.path()));
        // A profile that is no longer exported at all: its event files are removed.
        run(
            dir.path(),
            &[profile("other", "Other", ProfileKind::Tool)],
            3,
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    use fixtures::summarized as profile_with_summary;

    fn seconds(value: &Value) -> u64 {
        match value {
            Value::String(s) => s.parse().unwrap(),
            other => other.as_u64().unwrap(),
        }
    }

    #[test]
    fn removals_and_rewordings_reach_a_pulling_misp() {
        let dir = tempfile::tempdir().unwrap();
        let uuid = event_uuid("actor-1", 1).to_string();
        let path = dir.path().join(format!("{uuid}.json"));
        let first = vec![
            profile_with_summary("actor-1", "Aqua Blizzard", "First wording."),
            indicator("actor-1", "i1", ObservableType::Ipv4, "198.51.100.7"),
            indicator("actor-1", "i2", ObservableType::Domain, "evil.example"),
        ];
        assert_eq!(run(dir.path(), &first, 100).objects, 2);
        let before = read(path.clone());
        let before_manifest = read(dir.path().join(MANIFEST));
        let second = vec![
            profile_with_summary("actor-1", "Aqua Blizzard", "Second wording."),
            first[1].clone(),
        ];
        assert_eq!(run(dir.path(), &second, 100).objects, 1);
        let after = read(path.clone());
        let (old, new) = (&before["Event"], &after["Event"]);
        assert!(seconds(&new["timestamp"]) > seconds(&old["timestamp"]));
        assert_eq!(
            seconds(&read(dir.path().join(MANIFEST))[&uuid]["timestamp"]),
            seconds(&new["timestamp"])
        );
        assert!(seconds(&before_manifest[&uuid]["timestamp"]) < seconds(&new["timestamp"]));
        let [kept, removed] = new["Attribute"].as_array().unwrap().as_slice() else {
            panic!("{new}")
        };
        assert_eq!(kept, &old["Attribute"][0]);
        assert_eq!(removed["value"], "evil.example");
        assert_eq!(removed["uuid"], old["Attribute"][1]["uuid"]);
        assert_eq!(removed["comment"], old["Attribute"][1]["comment"]);
        assert_eq!(removed["deleted"], true);
        assert!(seconds(&removed["timestamp"]) > seconds(&old["Attribute"][1]["timestamp"]));
        assert!(seconds(&removed["timestamp"]) >= seconds(&new["timestamp"]));
        let report = &new["EventReport"][0];
        assert!(
            report["content"]
                .as_str()
                .unwrap()
                .contains("Second wording.")
        );
        assert!(seconds(&report["timestamp"]) > seconds(&old["EventReport"][0]["timestamp"]));
        let hashes = fs::read_to_string(dir.path().join(HASHES)).unwrap();
        assert_eq!(hashes.lines().count(), 1);
        assert!(!hashes.contains(&format!("{:x}", Md5::digest(b"evil.example"))));
        // The same input again: the same bytes.
        let files = snapshot(dir.path());
        run(dir.path(), &second, 100);
        assert_eq!(files, snapshot(dir.path()));
    }

    #[test]
    fn an_unreadable_previous_event_file_is_treated_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            profile("actor-1", "Aqua Blizzard", ProfileKind::Actor),
            indicator("actor-1", "i1", ObservableType::Ipv4, "198.51.100.7"),
        ];
        run(dir.path(), &records, 100);
        let expected = snapshot(dir.path());
        let path = dir
            .path()
            .join(format!("{}.json", event_uuid("actor-1", 1)));
        for garbage in [
            &b"{\"Event\": {\"uuid\": "[..],
            b"[]",
            b"{\"Event\": {\"uuid\": \"someone-else\"}}",
        ] {
            fs::write(&path, garbage).unwrap();
            run(dir.path(), &records, 100);
            assert_eq!(expected, snapshot(dir.path()));
        }
    }

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_vanished_profile_keeps_its_events_with_every_attribute_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let file = |profile: &str, part: u32| {
            dir.path()
                .join(format!("{}.json", event_uuid(profile, part)))
        };
        let kept = vec![
            profile("keep", "Kept", ProfileKind::Tool),
            indicator("keep", "k1", ObservableType::Ipv4, "198.51.100.9"),
        ];
        let mut gone = vec![profile("gone", "Gone", ProfileKind::Actor)];
        for n in 0..3u8 {
            gone.push(indicator(
                "gone",
                &format!("g{n}"),
                ObservableType::Domain,
                &format!("g{n}.example"),
            ));
        }
        // Run 1: both profiles; "gone" spans two events.
        let all: Vec<Mapped> = gone.iter().chain(&kept).cloned().collect();
        assert_eq!(run_acked(dir.path(), &all, 2, None).objects, 4);
        let before: Vec<Value> = (1..=2).map(|part| read(file("gone", part))).collect();
        let kept_before = fs::read(file("keep", 1)).unwrap();

        // Run 2: "gone" is no longer listed; the store revokes its memberships.
        let mut second = kept.clone();
        for n in 0..3u8 {
            second.push(crate::misp::builder::revoked_membership(
                "gone",
                &format!("g{n}.example"),
            ));
        }
        let report = run_acked(dir.path(), &second, 2, Some(1));
        assert_eq!(report.objects, 1, "retracted attributes are not in place");
        let manifest = read(dir.path().join(MANIFEST));
        assert_eq!(manifest.as_object().unwrap().len(), 3);
        for (part, old) in (1..=2).zip(&before) {
            let uuid = event_uuid("gone", part).to_string();
            let new = read(file("gone", part));
            let (old, new) = (&old["Event"], &new["Event"]);
            assert!(seconds(&new["timestamp"]) > seconds(&old["timestamp"]));
            assert_eq!(
                seconds(&manifest[&uuid]["timestamp"]),
                seconds(&new["timestamp"])
            );
            let attributes = new["Attribute"].as_array().unwrap();
            assert_eq!(attributes.len(), if part == 1 { 2 } else { 1 });
            for (attribute, previous) in attributes.iter().zip(old["Attribute"].as_array().unwrap())
            {
                assert_eq!(attribute["deleted"], true);
                assert_eq!(attribute["uuid"], previous["uuid"]);
                assert_eq!(attribute["timestamp"], new["timestamp"]);
            }
            for field in ["info", "date", "Orgc", "Tag", "extends_uuid", "EventReport"] {
                assert_eq!(new.get(field), old.get(field), "{field}");
            }
        }
        assert_eq!(fs::read(file("keep", 1)).unwrap(), kept_before);
        let hashes = fs::read_to_string(dir.path().join(HASHES)).unwrap();
        assert_eq!(hashes.lines().count(), 1, "{hashes}");
        let retired = snapshot(dir.path());

        // Run 3: nothing new is revoked; the retired files stay as they are.
        run_acked(dir.path(), &kept, 2, Some(2));
        assert_eq!(snapshot(dir.path()), retired);

        // Run 4: listed again, the attributes come back, newer than their retirement.
        let report = run_acked(dir.path(), &all, 2, Some(3));
        assert_eq!(report.objects, 4);
        for part in 1..=2 {
            let back = read(file("gone", part));
            let old = &retired
                .iter()
                .find(|(name, _)| *name == format!("{}.json", event_uuid("gone", part)))
                .map(|(_, bytes)| serde_json::from_slice::<Value>(bytes).unwrap())
                .unwrap();
            assert!(seconds(&back["Event"]["timestamp"]) > seconds(&old["Event"]["timestamp"]));
            for attribute in back["Event"]["Attribute"].as_array().unwrap() {
                assert_eq!(attribute["deleted"], false);
                assert!(seconds(&attribute["timestamp"]) > seconds(&old["Event"]["timestamp"]));
            }
        }

        // Retired again, then a run without a state store: the unlisted profile's files go.
        run_acked(dir.path(), &second, 2, Some(4));
        assert_eq!(
            read(dir.path().join(MANIFEST)).as_object().unwrap().len(),
            3
        );
        run(dir.path(), &kept, 2);
        assert!(!file("gone", 1).exists() && !file("gone", 2).exists());
        assert_eq!(
            read(dir.path().join(MANIFEST)).as_object().unwrap().len(),
            1
        );
    }

    #[test]
    fn without_a_previous_file_a_vanished_profile_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            profile("keep", "Kept", ProfileKind::Tool),
            indicator("keep", "k1", ObservableType::Ipv4, "198.51.100.9"),
            crate::misp::builder::revoked_membership("gone", "g.example"),
        ];
        run_acked(dir.path(), &records, 10, Some(1));
        assert_eq!(
            read(dir.path().join(MANIFEST)).as_object().unwrap().len(),
            1
        );
        assert!(
            !dir.path()
                .join(format!("{}.json", event_uuid("gone", 1)))
                .exists()
        );
    }

    #[test]
    fn a_dropped_sink_leaves_the_feed_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Box::new(MispFeedSink::create(dir.path(), options(10)).unwrap());
        sink.write(&profile("p", "P", ProfileKind::Actor)).unwrap();
        drop(sink);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
