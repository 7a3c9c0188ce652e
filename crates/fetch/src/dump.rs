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

use crate::collection::{Flow, Opening, read_collection, read_ndjson, skip_utf8_bom};
use crate::enrich::{DumpEnricher, EnrichGate, EnrichOptions};
use crate::records::{indicator_record, profile_record};

/// Failures that stop a source before it yields anything useful.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("dump directory {0} has neither intelProfiles.json nor intelProfiles.ndjson")]
    NoProfiles(PathBuf),
    #[error(
        "dump directory {0} has both intelProfiles.json and intelProfiles.ndjson; keep the one \
         that holds the listing (ctiport would read only one and ignore the other)"
    )]
    BothListings(PathBuf),
    /// The profile listing could not be read at all: the run must fail rather than export an
    /// empty listing in place of the real one.
    #[error("{path}: {reason}; the profile listing could not be read at all")]
    Unreadable { path: PathBuf, reason: String },
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
        let [json, ndjson] =
            ["intelProfiles.json", "intelProfiles.ndjson"].map(|name| root.join(name));
        let profiles_file = match (on_disk(&json), on_disk(&ndjson)) {
            (OnDisk::Unreadable(reason), _) => {
                return Err(SourceError::Unreadable { path: json, reason });
            }
            (_, OnDisk::Unreadable(reason)) => {
                return Err(SourceError::Unreadable {
                    path: ndjson,
                    reason,
                });
            }
            (OnDisk::File, OnDisk::File) => return Err(SourceError::BothListings(root.to_owned())),
            (OnDisk::File, OnDisk::Absent) => json,
            (OnDisk::Absent, OnDisk::File) => ndjson,
            (OnDisk::Absent, OnDisk::Absent) => {
                return Err(SourceError::NoProfiles(root.to_owned()));
            }
        };
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
                    if let Some(id) = raw_record_id(&value)
                        && !listed.insert(pct(&id))
                    {
                        tracing::warn!(profile = %id, "profile listed twice in the dump; taken once");
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

    /// Streams `indicators/<pct(id)>.json` and/or `.ndjson`; no file means no indicators. Anything
    /// else at that name (a directory, a FIFO, a dangling link) is an unreadable file, never "no
    /// indicators": a FIFO is not even opened, so a run cannot block on it.
    fn indicators_of(&self, profile_id: &str, emit: &mut dyn FnMut(SourceRecord) -> Flow) -> Flow {
        for extension in ["json", "ndjson"] {
            let path = self
                .root
                .join("indicators")
                .join(format!("{}.{extension}", pct(profile_id)));
            match on_disk(&path) {
                OnDisk::Absent => continue,
                OnDisk::File => {}
                OnDisk::Unreadable(reason) => {
                    let reason = format!(
                        "{reason}; the indicators of profile '{profile_id}' could not be read"
                    );
                    if emit(SourceRecord::Rejected(file_rejection(
                        &self.relative(&path),
                        &reason,
                    ))) == Flow::Stop
                    {
                        return Flow::Stop;
                    }
                    continue;
                }
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
    /// line and a truncated file's loss to `on_item`. A profile listing of which not one record
    /// could be read is an error: an empty export must never stand in for an unreadable one.
    fn read_file(
        &self,
        path: &Path,
        holds: Holds,
        on_item: &mut dyn FnMut(Result<Value, Rejection>) -> Flow,
    ) -> Result<Flow, SourceError> {
        let io_error = |source| SourceError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let mut reader = BufReader::with_capacity(BUFFER, file);
        let opening = skip_utf8_bom(&mut reader).map_err(io_error)?;
        let relative = self.relative(path);
        let mut flow = Flow::Continue;
        let (mut records, mut first_bad_line) = (0usize, None);
        let mut deliver = |item: Result<Value, Rejection>| {
            match &item {
                Ok(_) => records += 1,
                Err(rejection) => {
                    first_bad_line.get_or_insert_with(|| rejection.reason.clone());
                }
            }
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
        let listing = matches!(holds, Holds::Profiles);
        if listing && records == 0 && flow == Flow::Continue {
            let reason = match (opening, &outcome, first_bad_line) {
                (Opening::Utf16, _, _) => Some(
                    "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8"
                        .to_owned(),
                ),
                (Opening::Empty, Err(_), _) => Some("the file is empty".to_owned()),
                (_, Err(error), _) => Some(error.to_string()),
                (_, Ok(_), Some(first)) => {
                    Some(format!("no line of it could be read as a record (first: {first})"))
                }
                (_, Ok(_), None) => None,
            };
            if let Some(reason) = reason {
                return Err(SourceError::Unreadable {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
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

/// What is at a path the dump layout names.
enum OnDisk {
    Absent,
    /// A regular file, or a symlink to one: dumps are copied around, links and all.
    File,
    /// Something that cannot be read as a file, and why.
    Unreadable(String),
}

/// Looks at a path without opening it, so that a FIFO never blocks the run.
fn on_disk(path: &Path) -> OnDisk {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => OnDisk::Absent,
        Err(error) => OnDisk::Unreadable(format!("cannot read it: {error}")),
        Ok(_) => match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => OnDisk::File,
            Ok(metadata) => OnDisk::Unreadable(format!(
                "not a regular file ({})",
                describe_file_type(metadata.file_type())
            )),
            Err(error) => OnDisk::Unreadable(format!("cannot read it: {error}")),
        },
    }
}

fn describe_file_type(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "neither a file nor a directory"
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
    use crate::records::describe;
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
        try_run_source(source).unwrap()
    }

    /// Records as [`describe`] shows them, or the source's error.
    fn try_run_source(source: DumpSource) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        source
            .run(&mut |record| {
                seen.push(describe(record));
                Flow::Continue
            })
            .map_err(|e| e.to_string())?;
        Ok(seen)
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

    fn try_run(root: &Path) -> Result<Vec<String>, String> {
        try_run_source(DumpSource::open(root).map_err(|e| e.to_string())?)
    }

    const ONE_PROFILE: &str = r#"{"value":[{"id":"p1","kind":"actor","title":"T"}]}"#;

    #[cfg(unix)]
    #[test]
    fn a_directory_or_fifo_where_an_indicators_file_should_be_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.json",
            r#"{"value":[{"id":"p1","kind":"actor","title":"T"},{"id":"p2","kind":"tool","title":"U"},{"id":"p3","kind":"tool","title":"V"}]}"#,
        );
        fs::create_dir_all(dir.path().join("indicators/p1.json")).unwrap();
        let fifo = dir.path().join("indicators/p2.ndjson");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // A symlink to a regular file is followed: dumps are copied around with links.
        write(
            dir.path(),
            "elsewhere/p3.json",
            r#"{"value":[{"id":"i3"}]}"#,
        );
        std::os::unix::fs::symlink(
            dir.path().join("elsewhere/p3.json"),
            dir.path().join("indicators/p3.json"),
        )
        .unwrap();
        let seen = run(dir.path());
        assert_eq!(seen[0], "profile p1");
        assert!(
            seen[1].starts_with(
                "rejected indicators/p1.json (File): not a regular file (a directory)"
            ) && seen[1].contains("'p1'"),
            "{}",
            seen[1]
        );
        assert_eq!(seen[2], "profile p2");
        assert!(
            seen[3]
                .starts_with("rejected indicators/p2.ndjson (File): not a regular file (a FIFO)")
                && seen[3].contains("'p2'"),
            "{}",
            seen[3]
        );
        assert_eq!(&seen[4..], ["profile p3", "indicator p3/i3"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_for_an_indicators_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "intelProfiles.json", ONE_PROFILE);
        fs::create_dir_all(dir.path().join("indicators")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("gone.json"),
            dir.path().join("indicators/p1.json"),
        )
        .unwrap();
        let seen = run(dir.path());
        assert!(
            seen[1].starts_with("rejected indicators/p1.json (File): cannot read")
                && seen[1].contains("'p1'"),
            "{seen:?}"
        );
    }

    #[test]
    fn a_leading_utf8_bom_is_accepted_in_every_dump_file() {
        let dir = tempfile::tempdir().unwrap();
        let bom = "\u{feff}";
        write(
            dir.path(),
            "intelProfiles.json",
            &format!(
                r#"{bom}{{"value":[{{"id":"p1","kind":"actor","title":"T"}},{{"id":"p2","kind":"actor","title":"U"}}]}}"#
            ),
        );
        write(
            dir.path(),
            "indicators/p1.json",
            &format!(r#"{bom}{{"value":[{{"id":"i1"}}]}}"#),
        );
        write(
            dir.path(),
            "indicators/p2.ndjson",
            &format!("{bom}{{\"id\":\"i2\"}}\n"),
        );
        assert_eq!(
            run(dir.path()),
            [
                "profile p1",
                "indicator p1/i1",
                "profile p2",
                "indicator p2/i2"
            ]
        );
        let ndjson = tempfile::tempdir().unwrap();
        write(
            ndjson.path(),
            "intelProfiles.ndjson",
            &format!("{bom}{{\"id\":\"p1\",\"kind\":\"actor\",\"title\":\"T\"}}\n"),
        );
        assert_eq!(run(ndjson.path()), ["profile p1"]);
    }

    #[test]
    fn a_listing_unreadable_from_its_first_byte_fails_the_source() {
        let cases: [(&str, &[u8], &str); 8] = [
            ("intelProfiles.json", b"", "the file is empty"),
            ("intelProfiles.json", b"\xef\xbb\xbf", "the file is empty"),
            (
                "intelProfiles.json",
                br#"[{"id":"p1","kind":"actor"}]"#,
                "top-level value is an array, expected an object with \"value\"",
            ),
            (
                "intelProfiles.json",
                br#"{"items":[{"id":"p1"}]}"#,
                "no \"value\" member",
            ),
            ("intelProfiles.json", b"<html>", "not valid JSON"),
            ("intelProfiles.json", br#"{"value":[{"id""#, "EOF"),
            ("intelProfiles.json", b"\xff\xfe{\x00", "UTF-16"),
            (
                "intelProfiles.ndjson",
                b"{broken\n{also broken\n",
                "no line of it could be read",
            ),
        ];
        for (name, bytes, reason) in cases {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(name), bytes).unwrap();
            write(
                dir.path(),
                "indicators/p1.json",
                r#"{"value":[{"id":"i1"}]}"#,
            );
            let error = try_run(dir.path()).unwrap_err();
            assert!(
                error.contains(name) && error.contains(reason),
                "{bytes:?}: {error}"
            );
        }
    }

    #[test]
    fn an_empty_but_well_formed_listing_is_no_error() {
        for (name, text) in [
            ("intelProfiles.json", r#"{"value":[]}"#),
            ("intelProfiles.ndjson", ""),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), name, text);
            assert_eq!(try_run(dir.path()), Ok(Vec::new()), "{name}");
        }
    }

    #[test]
    fn a_listing_broken_after_its_first_record_is_partial() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "intelProfiles.json",
            r#"{"value":[{"id":"p1","kind":"actor","title":"T"},{"id""#,
        );
        let seen = try_run(dir.path()).unwrap();
        assert_eq!(seen[0], "profile p1");
        assert!(
            seen[1].starts_with("rejected intelProfiles.json (File)"),
            "{seen:?}"
        );
    }

    #[test]
    fn both_listings_in_one_dump_are_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "intelProfiles.json", ONE_PROFILE);
        write(dir.path(), "intelProfiles.ndjson", "");
        let error = DumpSource::open(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("intelProfiles.json") && error.contains("intelProfiles.ndjson"),
            "{error}"
        );
    }

    #[test]
    fn a_listing_that_is_not_a_regular_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("intelProfiles.json")).unwrap();
        write(dir.path(), "intelProfiles.ndjson", "");
        let error = DumpSource::open(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("intelProfiles.json") && error.contains("not a regular file"),
            "{error}"
        );
    }

    #[test]
    fn numbers_beyond_f64_are_read_and_numeric_ids_keep_their_text() {
        let profiles = [
            r#"{"id":"p1","kind":"actor","title":"T","extra":{"n":1e400,"m":[-2e999]}}"#,
            r#"{"id":123456789012345678901234567890,"kind":"actor","title":"U"}"#,
            r#"{"id":42,"kind":"tool","title":"V"}"#,
            r#"{"id":1e400,"kind":"tool","title":"W"}"#,
        ];
        let json = tempfile::tempdir().unwrap();
        write(
            json.path(),
            "intelProfiles.json",
            &format!(
                r#"{{"value":[{}],"@odata.count":1e999}}"#,
                profiles.join(",")
            ),
        );
        write(
            json.path(),
            "indicators/p1.json",
            r#"{"value":[{"id":"i1","x":1e400},{"id":7e1}]}"#,
        );
        let ndjson = tempfile::tempdir().unwrap();
        write(ndjson.path(), "intelProfiles.ndjson", &profiles.join("\n"));
        write(
            ndjson.path(),
            "indicators/p1.ndjson",
            "{\"id\":\"i1\",\"x\":1e400}\n{\"id\":7e1}\n",
        );
        for dir in [json, ndjson] {
            assert_eq!(
                run(dir.path()),
                [
                    "profile p1",
                    "indicator p1/i1",
                    "indicator p1/7e1",
                    "profile 123456789012345678901234567890",
                    "profile 42",
                    "profile 1e400",
                ]
            );
        }
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
