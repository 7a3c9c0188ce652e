//! Sinks: where mapped records go. Each sink receives the same stream (fetch once, fan out) and
//! commits its output only when the run completes, so a failed run never leaves half a file.
//!
//! Every kind is a folder with its options in `config.rs` and its driver beside it, and one line
//! in the registry. A caller knows only this page: it flattens [`SinkArgs`] into its command
//! line, hands each `--to` to [`SinkSpec::parse`] and each `[[sinks]]` table of a config file
//! ([`SinkTable`]) to [`SinkSpec::check_table`], and [`SinkSpec::open`]s the sinks with a
//! [`SinkContext`]. How options are resolved is in `options.rs`; the kinds are in `registry.rs`.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

mod atomic;
mod csv;
mod io_adapter;
mod misp;
mod ndjson;
mod options;
mod push;
mod registry;
mod stix;
mod taxii;

#[cfg(test)]
mod fixtures;

pub use atomic::AtomicFile;
pub use options::{SinkArgs, SinkTable};
pub use registry::{SinkContext, SinkSpec, foreign_key, schemes, secret_keys};

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// What a sink delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// STIX objects written (a chunked writer may repeat shared objects in several chunks).
    pub objects: u64,
    /// Files written, for the summary.
    pub files: Vec<String>,
    /// Objects the target refused while the rest was delivered (a pushing sink goes on past a
    /// refused object); a report with failures fails the run.
    pub failed: u64,
    /// `<object>: <reason>` for the first failures (`failed` is the complete count).
    pub failures: Vec<String>,
}

/// How a sink takes a run with a state store (`--state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Only the object versions it has not acknowledged, and revocations (STIX files, NDJSON,
    /// TAXII, CSV in delta mode).
    Changes,
    /// Every current record, and revocations, because its output is built from the whole state
    /// (MISP events, CSV snapshots); unchanged records still carry no news in their `first` flags.
    Snapshot,
}

/// A destination for the mapped stream. Calls come in order: `begin`, `write` for each record,
/// then `finish`, which commits. Dropping a sink without `finish` discards its partial output.
pub trait Sink: Send {
    /// The objects every output starts with (producer identity, marking definitions).
    fn begin(&mut self, preamble: &[EncodedObject]) -> Result<(), SinkError>;
    fn write(&mut self, record: &Mapped) -> Result<(), SinkError>;
    fn finish(self: Box<Self>) -> Result<SinkReport, SinkError>;

    /// What this sink receives in a run with a state store.
    fn delivery(&self) -> Delivery {
        Delivery::Changes
    }

    /// Called once, before `begin`, with the last run of the state store (`--state`) this sink
    /// acknowledged: it holds every object version whose `Version::run` is at most that run, and
    /// an object whose `Version::origin` is later is new to it. `None` without a state store, or
    /// for a sink the store has never seen, to which everything is new. The default ignores it.
    fn acknowledged(&mut self, run: Option<u32>) {
        let _ = run;
    }
}
