//! `--to stix:<file.json>` (one bundle, streamed) and `--to stix:<dir>/` (chunked bundles, each
//! self-contained), with their options ([`config`]).

mod bundle_file;
mod chunked;
mod config;
mod single;

pub use config::{BundleConfig, ChunkedBundleConfig};
