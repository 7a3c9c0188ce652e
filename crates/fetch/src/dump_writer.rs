//! `--to dump:<dir>`: what a live run fetched, written in the dump layout that `--from dir:`
//! reads, so a run can be replayed offline, moved into an air-gapped network, or attached to a
//! support ticket. Records are written verbatim as fetched (malformed ones included, so a replay
//! rejects exactly what the live run rejected), streamed to a staging directory that replaces the
//! destination only when the run completes. The format's reader and writer live side by side.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ctiport_model::pct::pct;
use serde_json::Value;

pub struct DumpWriter {
    destination: PathBuf,
    staging: PathBuf,
    profiles: BufWriter<File>,
    /// The indicators file of the profile being written; a profile's indicators are contiguous.
    indicators: Option<(String, BufWriter<File>)>,
    records: u64,
    indicator_records: u64,
    committed: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl DumpWriter {
    pub fn create(destination: &Path) -> std::io::Result<Self> {
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dump".into());
        let parent = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Unique per run and started empty: a killed run (same PID in a container) must not leave
        // records that the next capture would inherit.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let staging = parent.join(format!(".{name}.staging-{}-{nanos}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        for folder in ["indicators", "hosts", "reputation"] {
            fs::create_dir_all(staging.join(folder)).map_err(io(&staging))?;
        }
        let profiles_path = staging.join("intelProfiles.ndjson");
        let profiles = BufWriter::new(File::create(&profiles_path).map_err(io(&profiles_path))?);
        Ok(DumpWriter {
            destination: destination.to_owned(),
            staging,
            profiles,
            indicators: None,
            records: 0,
            indicator_records: 0,
            committed: false,
        })
    }

    fn line(writer: &mut BufWriter<File>, value: &Value) -> std::io::Result<()> {
        serde_json::to_writer(&mut *writer, value)?;
        writer.write_all(b"\n")
    }

    pub fn profile(&mut self, raw: &Value) -> std::io::Result<()> {
        self.records += 1;
        Self::line(&mut self.profiles, raw)
    }

    pub fn indicator(&mut self, profile_id: &str, raw: &Value) -> std::io::Result<()> {
        if self
            .indicators
            .as_ref()
            .is_none_or(|(id, _)| id != profile_id)
        {
            if let Some((_, mut previous)) = self.indicators.take() {
                previous.flush()?;
            }
            let path = self
                .staging
                .join("indicators")
                .join(format!("{}.ndjson", pct(profile_id)));
            // Append: a profile listed twice keeps every indicator of both listings.
            let file = fs::OpenOptions::new()
                .create(true)
                .append(true) // only within this run's fresh staging directory
                .open(&path)
                .map_err(io(&path))?;
            self.indicators = Some((profile_id.to_owned(), BufWriter::new(file)));
        }
        self.records += 1;
        self.indicator_records += 1;
        match self.indicators.as_mut() {
            Some((_, writer)) => Self::line(writer, raw),
            None => Ok(()),
        }
    }

    /// A `hosts/{id}` (folder `hosts`) or `hosts/{id}/reputation` (folder `reputation`) record.
    pub fn host_record(
        &mut self,
        folder: &'static str,
        host: &str,
        raw: &Value,
    ) -> std::io::Result<()> {
        let path = self
            .staging
            .join(folder)
            .join(format!("{}.json", pct(host)));
        fs::write(&path, serde_json::to_vec(raw)?).map_err(io(&path))?;
        self.records += 1;
        Ok(())
    }

    /// Moves the complete dump into place, replacing an earlier one. Returns the records written
    /// and, of those, the indicator records.
    pub fn commit(mut self) -> std::io::Result<(u64, u64)> {
        self.profiles.flush()?;
        if let Some((_, mut writer)) = self.indicators.take() {
            writer.flush()?;
        }
        if self.destination.exists() {
            let old = self.staging.with_extension("old");
            if old.exists() {
                fs::remove_dir_all(&old).map_err(io(&old))?;
            }
            fs::rename(&self.destination, &old).map_err(io(&self.destination))?;
            fs::rename(&self.staging, &self.destination).map_err(io(&self.destination))?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&self.staging, &self.destination).map_err(io(&self.destination))?;
        }
        self.committed = true;
        Ok((self.records, self.indicator_records))
    }
}

impl Drop for DumpWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::Flow;
    use crate::dump::DumpSource;
    use ctiport_model::record::SourceRecord;
    use serde_json::json;

    #[test]
    fn a_written_dump_reads_back_record_for_record() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("capture");
        let mut writer = DumpWriter::create(&destination).unwrap();
        writer
            .profile(&json!({"id": "a/b+c=", "kind": "actor", "title": "T"}))
            .unwrap();
        writer.indicator("a/b+c=", &json!({"id": "i1", "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": "x.example"}})).unwrap();
        writer.indicator("a/b+c=", &json!({"id": "i2"})).unwrap();
        writer
            .host_record(
                "hosts",
                "x.example",
                &json!({"id": "x.example", "registrar": "R"}),
            )
            .unwrap();
        assert!(!destination.exists(), "nothing appears before commit");
        assert_eq!(writer.commit().unwrap(), (4, 2));
        let mut seen = Vec::new();
        DumpSource::open(&destination)
            .unwrap()
            .run(&mut |record| {
                seen.push(match record {
                    SourceRecord::Profile(p) => format!("profile {}", p.id),
                    SourceRecord::Indicator { indicator, .. } => {
                        format!("indicator {}", indicator.id)
                    }
                    SourceRecord::Rejected(r) => format!("rejected {}", r.id),
                    SourceRecord::Filtered(f) => format!("filtered {}", f.id),
                });
                Flow::Continue
            })
            .unwrap();
        assert_eq!(seen, ["profile a/b+c=", "indicator i1", "indicator i2"]);
        assert!(destination.join("hosts/x.example.json").exists());
    }

    #[test]
    fn an_uncommitted_dump_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = DumpWriter::create(&dir.path().join("capture")).unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
