//! `--to ndjson:<file>` takes no options: the file is its target.

use std::path::Path;

use super::sink::NdjsonSink;
use crate::registry::{Built, NoFileKeys, SinkConfig, SinkContext};

/// `--to ndjson:<file>`.
#[derive(Clone, Debug, clap::Args)]
pub struct NdjsonConfig {}

impl SinkConfig for NdjsonConfig {
    const NAME: &'static str = "ndjson:";
    type FileKeys = NoFileKeys;

    fn build(self, target: &str, _: NoFileKeys, _: &SinkContext) -> Built {
        Ok(Box::new(NdjsonSink::create(Path::new(target))?))
    }
}
