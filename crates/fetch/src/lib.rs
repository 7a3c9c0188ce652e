//! Sources of Graph TI records: the live Microsoft Graph API and dump directories. Each yields, in
//! order, every profile followed by that profile's indicators, as
//! [`SourceRecord`](ctiport_model::SourceRecord)s; unreadable records are yielded as rejections so
//! that the rest of the run goes on.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

pub mod collection;
pub mod dump;
pub mod dump_writer;
pub mod enrich;
pub mod graph;
pub mod records;
pub mod source;

pub use dump::{DumpSource, SourceError};
pub use source::{Captured, RunError, Source, SourceReport};
