//! Mapping of Graph TI records to STIX 2.1: deterministic ids, patterns, profile and indicator
//! objects, per-run deduplication, and ctiport's own bundle checks.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

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

/// An RFC 3339 timestamp in UTC (`Z`), any fractional precision, that stix2-validator accepts
/// (years 0001 to 9999, no leap second).
pub(crate) fn timestamp_ok(text: &str) -> bool {
    ctiport_model::Timestamp::parse_stix(text).is_some()
}
