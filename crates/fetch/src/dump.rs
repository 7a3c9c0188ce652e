//! `--from dir:<path>`: a Graph dump on disk (layout in the README and `docs/contracts.md`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ctiport_model::graph::raw_record_id;
use ctiport_model::pct::pct;
use ctiport_model::record::{FilterKind, Filtered, RecordKind, Rejection, SourceRecord};
use ctiport_model::selection::ProfileSelection;
use serde_json::Value;

use crate::collection::{Flow, read_collection, read_ndjson};
use crate::enrich::{DumpEnricher, EnrichGate, EnrichOptions};
use crate::records::{indicator_record, profile_record};

/// Failures that stop a source before it yields anything useful.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("dump directory {0} has neither intelProfiles.json nor intelProfiles.ndjson")]
    NoProfiles(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reading buffers: large enough to keep system calls rare on multi-gigabyte files.
const BUFFER: usize = 256 * 1024;

pub struct DumpSource {
    root: PathBuf,
    profiles_file: PathBuf,
    enricher: Option<DumpEnricher>,
    /// `--kind`, `--profile`: profiles left out are yielded as [`SourceRecord::Filtered`] and
    /// their indicator files are not opened.
    selection: ProfileSelection,
    gate: Option<EnrichGate>,
}

/// The kind of record a collection file holds.
#[derive(Clone, Copy)]
enum Holds<'a> {
    Profiles,
    IndicatorsOf(&'a str),
}

impl DumpSource {
    pub fn open(root: &Path) -> Result<Self, SourceError> {
        let profiles_file = ["intelProfiles.json", "intelProfiles.ndjson"]
            .into_iter()
            .map(|name| root.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| SourceError::NoProfiles(root.to_owned()))?;
        Ok(DumpSource {
            root: root.to_owned(),
            profiles_file,
            enricher: None,
            selection: ProfileSelection::default(),
            gate: None,
        })
    }

    /// Enriches host indicators from the dump's `hosts/` and `reputation/` folders.
    pub fn with_enrichment(mut self, options: EnrichOptions) -> Self {
        self.enricher = options
            .any()
            .then(|| DumpEnricher::new(&self.root, options).gated(self.gate.clone()));
        self
    }

    /// Takes only the profiles `selection` takes (`--kind`, `--profile`).
    pub fn with_selection(mut self, selection: ProfileSelection) -> Self {
        self.selection = selection;
        self
    }

    /// Looks up only the hosts of indicators `gate` wants.
    pub fn with_enrichment_gate(mut self, gate: EnrichGate) -> Self {
        self.gate = Some(gate);
        self.enricher = self
            .enricher
            .take()
            .map(|enricher| enricher.gated(self.gate.clone()));
        self
    }

    /// Yields every profile followed by its indicators. `emit` returns [`Flow::Stop`] when the
    /// consumer has gone; the source then stops early.
    ///
    /// With `--profile`, the requested profiles come in the order given, as a live run fetches
    /// them, so that both give the same objects; the others are yielded as filtered first.
    pub fn run(&self, emit: &mut dyn FnMut(SourceRecord) -> Flow) -> Result<(), SourceError> {
        // Every listed profile's file name, taken or not: its indicators file is no orphan.
        let mut listed = HashSet::new();
        let stopped = if self.selection.ids.is_empty() {
            self.run_listing(&mut listed, emit)?
        } else {
            self.run_requested(&mut listed, emit)?
        };
        if !stopped {
            self.report_orphan_indicator_files(&listed, emit);
        }
        Ok(())
    }

    /// The listing in order; returns whether the consumer stopped the run.
    fn run_listing(
        &self,
        listed: &mut HashSet<String>,
        emit: &mut dyn FnMut(SourceRecord) -> Flow,
    ) -> Result<bool, SourceError> {
        let mut stopped = false;
        let file = self.profiles_file.clone();
        self.read_file(&file, Holds::Profiles, &mut |item| {
            let flow = match item {
                Ok(value) => {
                    // A profile listed twice (offset paging in the tool that wrote the dump) is
                    // taken once, as the live walk does: its indicators must not come twice.
                    let first_listing = raw_record_id(&value).is_none_or(|id| listed.insert(pct(&id)));
                    if !first_listing {
                        tracing::warn!(profile = ?raw_record_id(&value), "profile listed twice in the dump; taken once");
                        return Flow::Continue;
                    }
                    match self.selection.filtered_raw(&value) {
                        Some(filtered) => emit(SourceRecord::Filtered(filtered)),
                        None => self.profile_and_indicators(value, emit),
                    }
                }
                Err(rejection) => emit(SourceRecord::Rejected(rejection)),
            };
            stopped |= flow == Flow::Stop;
            flow
        })?;
        Ok(stopped)
    }

    /// `--profile`: reads the listing, holding only the requested profiles' records, then yields
    /// them in the order requested. An id the listing lacks is rejected, as a live run's 404 is.
    fn run_requested(
        &self,
        listed: &mut HashSet<String>,
        emit: &mut dyn FnMut(SourceRecord) -> Flow,
    ) -> Result<bool, SourceError> {
        let requested = self.selection.unique_ids();
        let mut found: HashMap<String, Value> = HashMap::new();
        let mut stopped = false;
        let file = self.profiles_file.clone();
        self.read_file(&file, Holds::Profiles, &mut |item| {
            let flow = match item {
                Ok(value) => match raw_record_id(&value) {
                    Some(id) if requested.contains(&id.as_str()) => {
                        listed.insert(pct(&id));
                        match found.entry(id) {
                            Entry::Occupied(first) => {
                                tracing::debug!(profile = %first.key(), "profile listed twice; taken once");
                            }
                            Entry::Vacant(entry) => {
                                entry.insert(value);
                            }
                        }
                        Flow::Continue
                    }
                    id => {
                        if let Some(id) = &id {
                            listed.insert(pct(id));
                        }
                        emit(SourceRecord::Filtered(Filtered {
                            id: id.unwrap_or_else(|| "(profile without id)".into()),
                            record: RecordKind::Profile,
                            by: FilterKind::Profile,
                        }))
                    }
                },
                Err(rejection) => emit(SourceRecord::Rejected(rejection)),
            };
            stopped |= flow == Flow::Stop;
            flow
        })?;
        if stopped {
            return Ok(true);
        }
        for id in requested {
            let flow = match found.remove(id) {
                Some(value) => match self.selection.filtered_raw(&value) {
                    Some(filtered) => emit(SourceRecord::Filtered(filtered)),
                    None => self.profile_and_indicators(value, emit),
                },
                None => emit(SourceRecord::Rejected(Rejection {
                    id: id.to_owned(),
                    record: RecordKind::Profile,
                    reason: format!(
                        "requested with --profile, but {} lists no profile with this id",
                        self.relative(&self.profiles_file)
                    ),
                })),
            };
            if flow == Flow::Stop {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One profile, then its indicators.
    fn profile_and_indicators(
        &self,
        value: Value,
        emit: &mut dyn FnMut(SourceRecord) -> Flow,
    ) -> Flow {
        let raw_id = raw_record_id(&value);
        let flow = emit(profile_record(value));
        match raw_id {
            // A rejected profile's indicators still go through, so each is accounted for.
            Some(id) if flow == Flow::Continue => self.indicators_of(&id, emit),
            _ => flow,
        }
    }

    /// Streams `indicators/<pct(id)>.json` and/or `.ndjson`; no file means no indicators.
    fn indicators_of(&self, profile_id: &str, emit: &mut dyn FnMut(SourceRecord) -> Flow) -> Flow {
        for extension in ["json", "ndjson"] {
            let path = self
                .root
                .join("indicators")
                .join(format!("{}.{extension}", pct(profile_id)));
            if !path.is_file() {
                continue;
            }
            let result = self.read_file(&path, Holds::IndicatorsOf(profile_id), &mut |item| {
                emit(match item {
                    Ok(value) => {
                        let mut record = indicator_record(profile_id, value);
                        if let Some(enricher) = &self.enricher {
                            enricher.enrich(&mut record);
                        }
                        record
                    }
                    Err(rejection) => SourceRecord::Rejected(rejection),
                })
            });
            let flow = match result {
                Ok(flow) => flow,
                Err(error) => emit(SourceRecord::Rejected(file_rejection(
                    &self.relative(&path),
                    &error.to_string(),
                ))),
            };
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Reads one collection file (`.json` or `.ndjson`), handing each record, each unreadable
    /// line and a truncated file's loss to `on_item`.
    fn read_file(
        &self,
        path: &Path,
        holds: Holds,
        on_item: &mut dyn FnMut(Result<Value, Rejection>) -> Flow,
    ) -> Result<Flow, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        })?;
        let reader = BufReader::with_capacity(BUFFER, file);
        let relative = self.relative(path);
        let mut flow = Flow::Continue;
        let mut deliver = |item| {
            flow = on_item(item);
            flow
        };
        let outcome = if path.extension().is_some_and(|e| e == "ndjson") {
            read_ndjson(reader, &mut |(number, parsed)| {
                deliver(parsed.map_err(|reason| Rejection {
                    id: format!("{relative}:{number}"),
                    record: RecordKind::Line,
                    reason,
                }))
            })
        } else {
            read_collection(reader, &mut |value| deliver(Ok(value)))
        };
        if let Err(error) = outcome {
            let what = match holds {
                Holds::Profiles => "the rest of the profile listing".to_owned(),
                Holds::IndicatorsOf(id) => format!("the rest of the indicators of profile '{id}'"),
            };
            return Ok(on_item(Err(file_rejection(
                &relative,
                &format!("{error}; {what} could not be read"),
            ))));
        }
        Ok(flow)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }

    /// An indicators file whose name matches no listed profile would otherwise vanish silently.
    fn report_orphan_indicator_files(
        &self,
        profile_files: &HashSet<String>,
        emit: &mut dyn FnMut(SourceRecord) -> Flow,
    ) {
        let Ok(entries) = std::fs::read_dir(self.root.join("indicators")) else {
            return;
        };
        let mut orphans: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let extension_ok = path
                    .extension()
                    .is_some_and(|e| e == "json" || e == "ndjson");
                extension_ok && !profile_files.contains(&stem)
            })
            .collect();
        orphans.sort();
        for path in orphans {
            let reason = "indicators file matches no profile in the listing; its indicators were not exported";
            if emit(SourceRecord::Rejected(file_rejection(
                &self.relative(&path),
                reason,
            ))) == Flow::Stop
            {
                return;
            }
        }
    }
}

fn file_rejection(id: &str, reason: &str) -> Rejection {
    Rejection {
        id: id.to_owned(),
        record: RecordKind::File,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctiport_model::graph::ProfileKind;
    use std::fs;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn run(root: &Path) -> Vec<String> {
        run_source(DumpSource::open(root).unwrap())
    }

    fn run_source(source: DumpSource) -> Vec<String> {
        let mut seen = Vec::new();
        source
            .run(&mut |record| {
                seen.push(match record {
                    SourceRecord::Profile(p) => format!("profile {}", p.id),
                    SourceRecord::Indicator {
                        profile_id,
                        indicator,
                        ..
                    } => format!("indicator {profile_id}/{}", indicator.id),
                    SourceRecord::Rejected(r) => {
                        format!("rejected {} ({:?}): {}", r.id, r.record, r.reason)
                    }
                    SourceRecord::Filtered(f) => {
                        format!("filtered {} ({:?}) by {}", f.id, f.record, f.by.as_str())
                    }
                });
                Flow::Continue
            })
            .unwrap();
        seen
    }

    #[test]
    fn yields_profiles_then_their_indicators_with_encoded_file_names() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.json",
            r#"{"value":[{"id":"ab/c+d=","kind":"actor","title":"T"},{"id":"empty","kind":"tool","title":"U"}]}"#,
        );
        write(
            dir.path(),
            "indicators/ab%2Fc%2Bd%3D.ndjson",
            "{\"id\":\"i1\"}\n{broken\n{\"id\":\"i2\"}\n",
        );
        write(dir.path(), "indicators/stray.json", r#"{"value":[]}"#);
        let seen = run(dir.path());
        assert_eq!(seen[0], "profile ab/c+d=");
        assert_eq!(seen[1], "indicator ab/c+d=/i1");
        assert!(
            seen[2]
                .starts_with("rejected indicators/ab%2Fc%2Bd%3D.ndjson:2 (Line): not valid JSON"),
            "{}",
            seen[2]
        );
        assert_eq!(seen[3], "indicator ab/c+d=/i2");
        assert_eq!(seen[4], "profile empty");
        assert!(
            seen[5].starts_with("rejected indicators/stray.json (File)"),
            "{}",
            seen[5]
        );
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn a_profile_that_fails_to_parse_is_reported_by_id() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.ndjson",
            "{\"id\":\"p1\",\"firstActiveDateTime\":\"someday\"}\n",
        );
        write(
            dir.path(),
            "indicators/p1.json",
            r#"{"value":[{"id":"i1"}]}"#,
        );
        let seen = run(dir.path());
        assert!(
            seen[0].starts_with("rejected p1 (Profile): `firstActiveDateTime`"),
            "{}",
            seen[0]
        );
        assert_eq!(seen[1], "indicator p1/i1");
    }

    #[test]
    fn a_truncated_collection_keeps_what_was_read_and_says_what_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.json",
            r#"{"value":[{"id":"p1","kind":"actor","title":"T"}]}"#,
        );
        write(
            dir.path(),
            "indicators/p1.json",
            r#"{"value":[{"id":"i1"},{"id":"i2""#,
        );
        let seen = run(dir.path());
        assert_eq!(seen[1], "indicator p1/i1");
        assert!(
            seen[2].starts_with("rejected indicators/p1.json (File):")
                && seen[2].contains("rest of the indicators of profile 'p1'"),
            "{}",
            seen[2]
        );
    }

    /// Three profiles; the tool's indicators file is unreadable, so any attempt to read it shows.
    fn selection_dump() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.ndjson",
            concat!(
                "{\"id\":\"a1\",\"kind\":\"actor\",\"title\":\"A\"}\n",
                "{\"id\":\"t/1\",\"kind\":\"Tool\",\"title\":\"T\",\"firstActiveDateTime\":\"bad\"}\n",
                "{\"value\":{\"id\":\"a2\",\"kind\":\"actor\",\"title\":\"B\"}}\n",
                "{broken\n",
            ),
        );
        write(
            dir.path(),
            "indicators/a1.json",
            r#"{"value":[{"id":"i1"}]}"#,
        );
        write(dir.path(), "indicators/a2.ndjson", "{\"id\":\"i2\"}\n");
        write(dir.path(), "indicators/t%2F1.json", "not json at all");
        dir
    }

    fn select(kind: Option<ProfileKind>, ids: &[&str]) -> ProfileSelection {
        ProfileSelection {
            kind,
            ids: ids.iter().map(|id| id.to_string()).collect(),
        }
    }

    #[test]
    fn kind_leaves_profiles_out_without_reading_their_indicators() {
        let dir = selection_dump();
        let source = DumpSource::open(dir.path())
            .unwrap()
            .with_selection(select(Some(ProfileKind::Actor), &[]));
        let seen = run_source(source);
        assert_eq!(
            &seen[..5],
            [
                "profile a1",
                "indicator a1/i1",
                "filtered t/1 (Profile) by kind",
                "profile a2",
                "indicator a2/i2",
            ]
        );
        assert!(
            seen[5].starts_with("rejected intelProfiles.ndjson:4 (Line)"),
            "{}",
            seen[5]
        );
        // The tool's unreadable file was never opened, and it is no orphan either.
        assert_eq!(seen.len(), 6, "{seen:?}");

        let source = DumpSource::open(dir.path())
            .unwrap()
            .with_selection(select(Some(ProfileKind::Tool), &[]));
        let seen = run_source(source);
        assert_eq!(seen[0], "filtered a1 (Profile) by kind");
        assert!(seen[1].starts_with("rejected t/1 (Profile)"), "{}", seen[1]);
        assert!(
            seen[2].starts_with("rejected indicators/t%2F1.json (File)"),
            "{}",
            seen[2]
        );
        assert_eq!(seen[3], "filtered a2 (Profile) by kind");
    }

    #[test]
    fn requested_profiles_come_in_the_order_given_and_missing_ones_are_rejected() {
        let dir = selection_dump();
        let source = DumpSource::open(dir.path())
            .unwrap()
            .with_selection(select(None, &["a2", "nope", "a1", "a2"]));
        let seen = run_source(source);
        assert_eq!(seen[0], "filtered t/1 (Profile) by profile");
        assert!(
            seen[1].starts_with("rejected intelProfiles.ndjson:4 (Line)"),
            "{}",
            seen[1]
        );
        assert_eq!(&seen[2..4], ["profile a2", "indicator a2/i2"]);
        assert!(
            seen[4].starts_with("rejected nope (Profile): requested with --profile")
                && seen[4].contains("intelProfiles.ndjson"),
            "{}",
            seen[4]
        );
        assert_eq!(&seen[5..], ["profile a1", "indicator a1/i1"]);

        let source = DumpSource::open(dir.path())
            .unwrap()
            .with_selection(select(Some(ProfileKind::Tool), &["a1", "t/1"]));
        let seen = run_source(source);
        assert_eq!(seen[0], "filtered a2 (Profile) by profile");
        assert_eq!(seen[2], "filtered a1 (Profile) by kind");
        assert!(seen[3].starts_with("rejected t/1 (Profile)"), "{}", seen[3]);
        assert_eq!(seen.len(), 5, "{seen:?}");
    }

    #[test]
    fn the_enrichment_gate_decides_which_hosts_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.json",
            r#"{"value":[{"id":"p","kind":"actor","title":"P"}]}"#,
        );
        let host = |id: &str, source: &str, host: &str| {
            format!(
                r#"{{"id":"{id}","source":"{source}","artifact":{{"@odata.type":"hostname","id":"{host}"}}}}"#
            )
        };
        write(
            dir.path(),
            "indicators/p.ndjson",
            &[
                host("i1", "public", "a.example"),
                host("i2", "osint", "b.example"),
                host("i3", "osint", "a.example"),
            ]
            .join("\n"),
        );
        for name in ["a.example", "b.example"] {
            write(
                dir.path(),
                &format!("reputation/{name}.json"),
                r#"{"score": 50}"#,
            );
        }
        let options = EnrichOptions {
            hosts: false,
            reputation: true,
            max_hosts: 1,
        };
        let gate = EnrichGate::new(|indicator| {
            indicator.source == Some(ctiport_model::graph::IndicatorSource::Osint)
        });
        // Both builder orders gate the enricher.
        for source in [
            DumpSource::open(dir.path())
                .unwrap()
                .with_enrichment(options)
                .with_enrichment_gate(gate.clone()),
            DumpSource::open(dir.path())
                .unwrap()
                .with_enrichment_gate(gate.clone())
                .with_enrichment(options),
        ] {
            let mut enriched = Vec::new();
            source
                .run(&mut |record| {
                    if let SourceRecord::Indicator {
                        indicator, host, ..
                    } = record
                    {
                        enriched.push((indicator.id, host.is_some()));
                    }
                    Flow::Continue
                })
                .unwrap();
            // i1 is not wanted, so the budget of one host goes to b.example, not a.example.
            assert_eq!(
                enriched,
                [
                    ("i1".into(), false),
                    ("i2".into(), true),
                    ("i3".into(), false)
                ]
            );
        }
    }

    #[test]
    fn a_profile_listed_twice_is_taken_once_with_its_indicators() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.ndjson",
            "{\"id\":\"a\",\"kind\":\"actor\",\"title\":\"A\"}\n{\"id\":\"b\",\"kind\":\"tool\",\"title\":\"B\"}\n{\"id\":\"a\",\"kind\":\"actor\",\"title\":\"A\"}\n",
        );
        write(
            dir.path(),
            "indicators/a.json",
            r#"{"value":[{"id":"i1"}]}"#,
        );
        assert_eq!(
            run(dir.path()),
            ["profile a", "indicator a/i1", "profile b"]
        );
    }

    #[test]
    fn a_directory_without_profiles_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DumpSource::open(dir.path()),
            Err(SourceError::NoProfiles(_))
        ));
    }
}
