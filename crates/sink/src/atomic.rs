//! Files that appear whole or not at all: written to a temporary name in the same directory,
//! flushed and synced, then renamed over the destination.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::SinkError;

pub struct AtomicFile {
    destination: PathBuf,
    temporary: PathBuf,
    writer: Option<BufWriter<File>>,
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl AtomicFile {
    pub fn create(destination: &Path) -> Result<Self, SinkError> {
        let parent = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io_error(parent))?;
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&temporary).map_err(io_error(&temporary))?;
        Ok(AtomicFile {
            destination: destination.to_owned(),
            temporary,
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let temporary = &self.temporary;
        match self.writer.as_mut() {
            Some(writer) => writer.write_all(bytes).map_err(io_error(temporary)),
            None => Err(SinkError::Other(format!(
                "{}: already committed",
                self.destination.display()
            ))),
        }
    }

    /// Makes the file visible under its destination name.
    pub fn commit(mut self) -> Result<PathBuf, SinkError> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| SinkError::Other("already committed".into()))?;
        let file = writer.into_inner().map_err(|e| SinkError::Io {
            path: self.temporary.display().to_string(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_error(&self.temporary))?;
        fs::rename(&self.temporary, &self.destination).map_err(io_error(&self.destination))?;
        Ok(self.destination.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_until_commit_and_nothing_remains_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.json");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"{}").unwrap();
        assert!(!path.exists());
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}");

        let mut abandoned = AtomicFile::create(&path).unwrap();
        abandoned.write_all(b"partial").unwrap();
        drop(abandoned);
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}
