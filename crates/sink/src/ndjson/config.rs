//! `--to ndjson:<file>` takes no options: the file is its target.

use std::path::Path;

use super::sink::NdjsonSink;
use crate::registry::{NoFileKeys, SinkConfig, SinkContext};
use crate::{Sink, SinkError};

/// `--to ndjson:<file>`.
#[derive(Clone, Debug, clap::Args)]
pub struct NdjsonConfig {}

impl SinkConfig for NdjsonConfig {
    const NAME: &'static str = "ndjson:";
    type FileKeys = NoFileKeys;

    fn build(
        self,
        target: &str,
        _: NoFileKeys,
        _: &SinkContext,
    ) -> Result<Box<dyn Sink>, SinkError> {
        Ok(Box::new(NdjsonSink::create(Path::new(target))?))
    }
}
