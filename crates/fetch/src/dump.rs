//! `--from dir:<path>`: a Graph dump on disk (layout in the README and `docs/contracts.md`).

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ctiport_model::graph::raw_record_id;
use ctiport_model::pct::pct;
use ctiport_model::record::{RecordKind, Rejection, SourceRecord};
use serde_json::Value;

use crate::collection::{Flow, read_collection, read_ndjson};
use crate::enrich::{DumpEnricher, EnrichOptions};
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
        })
    }

    /// Enriches host indicators from the dump's `hosts/` and `reputation/` folders.
    pub fn with_enrichment(mut self, options: EnrichOptions) -> Self {
        self.enricher = options
            .any()
            .then(|| DumpEnricher::new(&self.root, options));
        self
    }

    /// Yields every profile followed by its indicators. `emit` returns [`Flow::Stop`] when the
    /// consumer has gone; the source then stops early.
    pub fn run(&self, emit: &mut dyn FnMut(SourceRecord) -> Flow) -> Result<(), SourceError> {
        let mut profile_files = HashSet::new();
        let mut stopped = false;
        let file = self.profiles_file.clone();
        self.read_file(&file, Holds::Profiles, &mut |item| {
            let flow = match item {
                Ok(value) => {
                    let raw_id = raw_record_id(&value);
                    let flow = emit(profile_record(value));
                    match raw_id {
                        // A rejected profile's indicators still go through, so each is accounted for.
                        Some(id) if flow == Flow::Continue => {
                            profile_files.insert(pct(&id));
                            self.indicators_of(&id, emit)
                        }
                        _ => flow,
                    }
                }
                Err(rejection) => emit(SourceRecord::Rejected(rejection)),
            };
            stopped |= flow == Flow::Stop;
            flow
        })?;
        if !stopped {
            self.report_orphan_indicator_files(&profile_files, emit);
        }
        Ok(())
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
    use std::fs;

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn run(root: &Path) -> Vec<String> {
        let mut seen = Vec::new();
        DumpSource::open(root)
            .unwrap()
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

    #[test]
    fn a_directory_without_profiles_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            DumpSource::open(dir.path()),
            Err(SourceError::NoProfiles(_))
        ));
    }
}
