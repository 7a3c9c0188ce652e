//! `--to stix:<file.json>` (one bundle, streamed) and `--to stix:<dir>/` (chunked bundles, each
//! self-contained).

mod bundle_file;
mod chunked;
mod single;

pub use chunked::{ChunkLimits, ChunkedBundleSink};
pub use single::BundleSink;
