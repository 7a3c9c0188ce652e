//! The options of `--to stix:<file.json>` (none) and `--to stix:<dir>/` (the chunk limits): the
//! trailing slash of the target tells them apart.

use std::path::Path;

use super::chunked::{ChunkLimits, ChunkedBundleSink};
use super::single::BundleSink;
use crate::options::whole_number;
use crate::registry::{Built, NoFileKeys, SinkConfig, SinkContext};

/// `--to stix:<file.json>`: one bundle.
#[derive(Clone, Debug, clap::Args)]
pub struct BundleConfig {}

impl SinkConfig for BundleConfig {
    const NAME: &'static str = "stix:<file>";
    type FileKeys = NoFileKeys;

    fn accepts(target: &str) -> bool {
        !target.ends_with('/')
    }

    fn build(self, target: &str, _: NoFileKeys, _: &SinkContext) -> Built {
        Ok(Box::new(BundleSink::create(Path::new(target))?))
    }
}

/// `--to stix:<dir>/`: chunked, self-contained bundles.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct ChunkedBundleConfig {
    /// Most objects in one chunk of a `stix:<dir>/` sink.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = whole_number(1, u64::MAX))]
    pub max_bundle_objects: u64,

    /// Most bytes in one chunk of a `stix:<dir>/` sink.
    #[arg(long, value_name = "BYTES", default_value_t = 50 * 1024 * 1024, value_parser = whole_number(1024, u64::MAX))]
    pub max_bundle_bytes: u64,
}

impl SinkConfig for ChunkedBundleConfig {
    const NAME: &'static str = "stix:<dir>/";
    type FileKeys = NoFileKeys;

    fn accepts(target: &str) -> bool {
        target.ends_with('/')
    }

    fn build(self, target: &str, _: NoFileKeys, _: &SinkContext) -> Built {
        let limits = ChunkLimits {
            max_objects: self.max_bundle_objects,
            max_bytes: self.max_bundle_bytes,
        };
        Ok(Box::new(ChunkedBundleSink::create(
            Path::new(target),
            limits,
        )?))
    }
}
