//! Chunked bundles, `<dir>/bundle-00001.json`, …, each under an object and a byte limit and each
//! self-contained: every id an object in a chunk references is in that chunk too, so any chunk can
//! be imported on its own (and passes `--enforce-refs`).
//!
//! Records are placed whole: a record's objects plus whatever they reference that the chunk lacks.
//! Referenced objects come from the record itself (a repeated indicator travels with its new
//! relationship) or from a cache of profile-level objects (profiles, locations, sectors, producer,
//! markings), which is small: it grows with the number of profiles, not of indicators.
//! Chunks are staged in a hidden directory and moved into place when the run completes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;

use super::bundle_file::{BUNDLE_OVERHEAD, BundleFile, encoded_size};
use crate::atomic::io_error;
use crate::{Sink, SinkError, SinkReport};

#[derive(Clone, Copy, Debug)]
pub struct ChunkLimits {
    pub max_objects: u64,
    pub max_bytes: u64,
}

pub struct ChunkedBundleSink {
    directory: PathBuf,
    staging: PathBuf,
    limits: ChunkLimits,
    context: HashMap<Arc<str>, EncodedObject>,
    chunk: Option<Chunk>,
    written: Vec<PathBuf>,
    objects: u64,
    committed: bool,
}

struct Chunk {
    bundle: BundleFile,
    ids: HashSet<Arc<str>>,
}

impl ChunkedBundleSink {
    pub fn create(directory: &Path, limits: ChunkLimits) -> Result<Self, SinkError> {
        let staging = directory.join(format!(".staging-{}", std::process::id()));
        fs::create_dir_all(&staging).map_err(io_error(&staging))?;
        Ok(ChunkedBundleSink {
            directory: directory.to_owned(),
            staging,
            limits,
            context: HashMap::new(),
            chunk: None,
            written: Vec::new(),
            objects: 0,
            committed: false,
        })
    }

    /// The objects to add to the current chunk so that `wanted` and everything it references is in.
    fn closure(
        &self,
        wanted: &[&EncodedObject],
        record: &[&EncodedObject],
        chunk_ids: &HashSet<Arc<str>>,
    ) -> Result<Vec<EncodedObject>, SinkError> {
        let mut added: Vec<EncodedObject> = Vec::new();
        let mut present: HashSet<Arc<str>> = HashSet::new();
        let mut stack: Vec<EncodedObject> = wanted.iter().rev().map(|o| (*o).clone()).collect();
        while let Some(object) = stack.pop() {
            if chunk_ids.contains(&object.id) || !present.insert(object.id.clone()) {
                continue;
            }
            for reference in object.references.iter() {
                let reference: &str = reference;
                if chunk_ids.contains(reference) || present.contains(reference) {
                    continue;
                }
                let found = record
                    .iter()
                    .find(|o| &*o.id == reference)
                    .copied()
                    .or_else(|| self.context.get(reference));
                match found {
                    Some(dependency) => stack.push(dependency.clone()),
                    None => {
                        return Err(SinkError::Other(format!(
                            "{} references {reference}, which was never emitted",
                            object.id
                        )));
                    }
                }
            }
            added.push(object);
        }
        // Dependencies first, so a reader meets every object before what points at it.
        added.reverse();
        Ok(added)
    }

    fn open_chunk(&mut self) -> Result<(), SinkError> {
        let name = format!("bundle-{:05}.json", self.written.len() + 1);
        self.chunk = Some(Chunk {
            bundle: BundleFile::create(&self.staging.join(name))?,
            ids: HashSet::new(),
        });
        Ok(())
    }

    fn close_chunk(&mut self) -> Result<(), SinkError> {
        if let Some(chunk) = self.chunk.take() {
            self.written.push(chunk.bundle.commit()?);
        }
        Ok(())
    }

    fn place(
        &mut self,
        wanted: &[&EncodedObject],
        record: &[&EncodedObject],
    ) -> Result<(), SinkError> {
        if wanted.is_empty() {
            return Ok(());
        }
        if self.chunk.is_none() {
            self.open_chunk()?;
        }
        let empty = HashSet::new();
        let ids = self.chunk.as_ref().map_or(&empty, |c| &c.ids);
        let mut additions = self.closure(wanted, record, ids)?;
        let fits = |chunk: &Chunk, additions: &[EncodedObject]| {
            let bytes: u64 = additions.iter().map(encoded_size).sum();
            chunk.bundle.objects() + additions.len() as u64 <= self.limits.max_objects
                && chunk.bundle.bytes() + bytes <= self.limits.max_bytes
        };
        if let Some(chunk) = &self.chunk
            && chunk.bundle.objects() > 0
            && !fits(chunk, &additions)
        {
            self.close_chunk()?;
            self.open_chunk()?;
            additions = self.closure(wanted, record, &HashSet::new())?;
        }
        let Some(chunk) = self.chunk.as_mut() else {
            return Ok(());
        };
        if chunk.bundle.objects() == 0 && additions.len() as u64 > self.limits.max_objects {
            tracing::warn!(
                objects = additions.len(),
                "one record and its references exceed --max-bundle-objects; written as one larger chunk"
            );
        }
        for object in &additions {
            chunk.bundle.push(object)?;
            chunk.ids.insert(object.id.clone());
        }
        self.objects += additions.len() as u64;
        Ok(())
    }
}

impl Sink for ChunkedBundleSink {
    fn begin(&mut self, preamble: &[EncodedObject]) -> Result<(), SinkError> {
        if self.limits.max_objects == 0 || self.limits.max_bytes <= BUNDLE_OVERHEAD {
            return Err(SinkError::Other("chunk limits are too small".into()));
        }
        for object in preamble {
            self.context.insert(object.id.clone(), object.clone());
        }
        Ok(())
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        if let Mapped::Profile(_) = record {
            for emitted in record.objects() {
                self.context
                    .insert(emitted.object.id.clone(), emitted.object.clone());
            }
        }
        let all: Vec<&EncodedObject> = record.objects().iter().map(|e| &e.object).collect();
        let wanted: Vec<&EncodedObject> = record
            .objects()
            .iter()
            .filter(|e| e.first)
            .map(|e| &e.object)
            .collect();
        self.place(&wanted, &all)
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReport, SinkError> {
        if self.written.is_empty() && self.chunk.is_none() {
            // A run with nothing but the preamble still produces one valid bundle.
            let preamble: Vec<EncodedObject> = self.context.values().cloned().collect();
            let refs: Vec<&EncodedObject> = preamble.iter().collect();
            self.place(&refs, &refs)?;
        }
        self.close_chunk()?;
        let mut files = Vec::new();
        for staged in &self.written {
            let name = staged.file_name().map(PathBuf::from).unwrap_or_default();
            let destination = self.directory.join(name);
            fs::rename(staged, &destination).map_err(io_error(&destination))?;
            files.push(destination.display().to_string());
        }
        remove_stale_chunks(&self.directory, self.written.len());
        self.committed = true;
        let _ = fs::remove_dir_all(&self.staging);
        Ok(SinkReport {
            objects: self.objects,
            files,
            ..SinkReport::default()
        })
    }
}

impl Drop for ChunkedBundleSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// Chunks numbered past this run's last one are left over from an earlier, larger export.
fn remove_stale_chunks(directory: &Path, written: usize) {
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name
            .strip_prefix("bundle-")
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<usize>().ok());
        if number.is_some_and(|n| n > written) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
