//! Sources of Graph TI records. Each yields, in order, every profile followed by that profile's
//! indicators, as [`SourceRecord`](ctiport_model::SourceRecord)s; unreadable records are yielded as
//! rejections so that the rest of the run goes on.

pub mod collection;
pub mod dump;

pub use dump::{DumpSource, SourceError};
