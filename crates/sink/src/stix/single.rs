//! One bundle holding every object once, streamed to disk as the records arrive.

use std::path::Path;

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;

use super::bundle_file::BundleFile;
use crate::{Sink, SinkError, SinkReport};

pub struct BundleSink {
    bundle: BundleFile,
}

impl BundleSink {
    pub fn create(path: &Path) -> Result<Self, SinkError> {
        Ok(BundleSink {
            bundle: BundleFile::create(path)?,
        })
    }
}

impl Sink for BundleSink {
    fn begin(&mut self, preamble: &[EncodedObject]) -> Result<(), SinkError> {
        preamble
            .iter()
            .try_for_each(|object| self.bundle.push(object))
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        // Objects seen before (a shared location, an indicator of several profiles) are already in.
        record
            .objects()
            .iter()
            .filter(|e| e.first)
            .try_for_each(|e| self.bundle.push(&e.object))
    }

    fn finish(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let objects = self.bundle.objects();
        let path = self.bundle.commit()?;
        Ok(SinkReport {
            objects,
            files: vec![path.display().to_string()],
            ..SinkReport::default()
        })
    }
}
