//! `--to ndjson:<file>`: one STIX object per line ([`sink`]); no options of its own ([`config`]).

mod config;
mod sink;

pub use config::NdjsonConfig;
