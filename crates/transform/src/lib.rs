//! Mapping of Graph TI records to STIX 2.1: deterministic ids, patterns, profile and indicator
//! objects, per-run deduplication, and ctiport's own bundle checks.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

mod bundle_reader;
pub mod context;
pub mod filter;
pub mod ids;
pub mod indicator;
pub mod mapper;
pub mod mappings;
pub mod observable;
pub mod options;
pub mod pattern;
pub mod profile;

pub use filter::{Decision, Filter, FilterOptions};
pub use mapper::{Mapper, Outcome};
pub use mappings::{MappingError, Mappings};
pub use options::{ActorAs, MappingOptions};
pub mod validate;

/// An RFC 3339 timestamp in UTC (`Z`), any fractional precision.
pub(crate) fn timestamp_ok(text: &str) -> bool {
    text.ends_with('Z') && ctiport_model::Timestamp::parse(text).is_some()
}
