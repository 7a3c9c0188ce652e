//! One bundle file written as a stream: `{"type":"bundle","id":…,"objects":[` … `]}`.
//! Bundles are transient envelopes, so each gets a fresh UUIDv4 id. A bundle with no objects (an
//! incremental run with nothing new) has no `objects` property: STIX 2.1 forbids an empty list.

use std::path::{Path, PathBuf};

use ctiport_model::stix::EncodedObject;

use crate::SinkError;
use crate::atomic::AtomicFile;

pub struct BundleFile {
    file: AtomicFile,
    objects: u64,
    bytes: u64,
}

/// Bytes a bundle adds around its objects: the opening and the closing.
pub const BUNDLE_OVERHEAD: u64 = 120;

impl BundleFile {
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        let mut file = AtomicFile::create(path)?;
        let opening = format!(
            "{{\"type\":\"bundle\",\"id\":\"bundle--{}\"",
            uuid::Uuid::new_v4()
        );
        file.write_all(opening.as_bytes())?;
        Ok(BundleFile {
            file,
            objects: 0,
            bytes: BUNDLE_OVERHEAD,
        })
    }

    pub fn push(&mut self, object: &EncodedObject) -> Result<(), SinkError> {
        let separator: &[u8] = if self.objects > 0 {
            b",\n"
        } else {
            b",\"objects\":[\n"
        };
        self.file.write_all(separator)?;
        self.file.write_all(object.json.as_bytes())?;
        self.objects += 1;
        self.bytes += encoded_size(object);
        Ok(())
    }

    pub fn objects(&self) -> u64 {
        self.objects
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn commit(mut self) -> Result<PathBuf, SinkError> {
        let closing: &[u8] = if self.objects > 0 { b"\n]}\n" } else { b"}\n" };
        self.file.write_all(closing)?;
        self.file.commit()
    }
}

/// Bytes an object takes in a bundle, separator included.
pub fn encoded_size(object: &EncodedObject) -> u64 {
    object.json.len() as u64 + 2
}
