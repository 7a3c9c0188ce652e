//! Sources of Graph TI records: the live Microsoft Graph API and dump directories. Each yields, in
//! order, every profile followed by that profile's indicators, as
//! [`SourceRecord`](ctiport_model::SourceRecord)s; unreadable records are yielded as rejections so
//! that the rest of the run goes on.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

mod collection;
mod dump;
mod dump_writer;
mod enrich;
pub mod graph;
mod records;
mod source;

pub use dump::{DumpSource, SourceError};
pub use enrich::{EnrichGate, EnrichOptions};
pub use graph::config::{DEFAULT_AUTHORITY_URL, DEFAULT_GRAPH_URL};
pub use graph::{Credentials, GraphConfig, GraphError};
pub use source::{Captured, RunError, Source, SourceReport};
