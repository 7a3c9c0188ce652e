//! An [`AtomicFile`] as a `std::io::Write`, for writers that need one (the `csv` crate,
//! `serde_json::to_writer`).

use std::io;
use std::path::PathBuf;

use crate::SinkError;
use crate::atomic::AtomicFile;

pub struct AtomicWriter {
    file: AtomicFile,
}

impl AtomicWriter {
    pub fn create(path: &std::path::Path) -> Result<Self, SinkError> {
        Ok(AtomicWriter {
            file: AtomicFile::create(path)?,
        })
    }

    /// Makes the file visible under its destination name.
    pub fn commit(self) -> Result<PathBuf, SinkError> {
        self.file.commit()
    }
}

impl io::Write for AtomicWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .write_all(buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }

    /// The file buffers internally and is flushed and synced on commit.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `csv` writer's error as a sink error.
pub fn csv_error(path: &std::path::Path, error: ::csv::Error) -> SinkError {
    SinkError::Other(format!("{}: {error}", path.display()))
}
