//! `--to ndjson:<file>`: one STIX object per line, each object once.

use std::path::Path;

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;

use crate::atomic::AtomicFile;
use crate::{Sink, SinkError, SinkReport};

pub struct NdjsonSink {
    file: AtomicFile,
    objects: u64,
}

impl NdjsonSink {
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        Ok(NdjsonSink {
            file: AtomicFile::create(path)?,
            objects: 0,
        })
    }

    fn line(&mut self, object: &EncodedObject) -> Result<(), SinkError> {
        self.file.write_all(object.json.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.objects += 1;
        Ok(())
    }
}

impl Sink for NdjsonSink {
    fn begin(&mut self, preamble: &[EncodedObject]) -> Result<(), SinkError> {
        preamble.iter().try_for_each(|object| self.line(object))
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        record
            .objects()
            .iter()
            .filter(|e| e.first)
            .try_for_each(|e| self.line(&e.object))
    }

    fn finish(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let path = self.file.commit()?;
        Ok(SinkReport {
            objects: self.objects,
            files: vec![path.display().to_string()],
            ..SinkReport::default()
        })
    }
}
