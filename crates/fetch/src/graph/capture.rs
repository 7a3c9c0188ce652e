//! `--to dump:` on a live run: everything fetched is also written, verbatim, to a dump.

use std::sync::{Arc, Mutex};

use super::error::GraphError;
use crate::dump_writer::DumpWriter;

/// The dump being captured (`--to dump:`), shared by the consumer and the enrichment lookups.
pub type Capture = Arc<Mutex<DumpWriter>>;

/// Writes to the capture, turning an I/O failure into a run failure.
pub fn capture_with(
    capture: &Option<Capture>,
    write: impl FnOnce(&mut DumpWriter) -> std::io::Result<()>,
) -> Result<(), GraphError> {
    let Some(capture) = capture else {
        return Ok(());
    };
    let mut writer = capture.lock().unwrap_or_else(|e| e.into_inner());
    write(&mut writer).map_err(|e| GraphError::Invalid(format!("writing the dump: {e}")))
}
