//! Mapping of Graph TI records to STIX 2.1: deterministic ids, patterns, profile and indicator
//! objects, per-run deduplication, and ctiport's own bundle checks.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

mod bundle_reader;
mod context;
mod filter;
#[cfg(test)]
mod fixtures;
mod ids;
mod indicator;
mod mapper;
mod mappings;
mod observable;
// Named by path in the CLI's argument defaults (`options::DEFAULT_PRODUCER`, also at the root).
pub mod options;
mod pattern;
mod profile;
pub mod validate;

pub use filter::{ArtifactTypeName, Decision, Filter, FilterOptions, parse_since};
pub use mapper::{Mapper, Outcome};
pub use mappings::{MappingError, Mappings};
pub use options::{ActorAs, DEFAULT_PRODUCER, MappingOptions};

/// An RFC 3339 timestamp in UTC (`Z`), any fractional precision, that stix2-validator accepts
/// (years 0001 to 9999, no leap second).
pub(crate) fn timestamp_ok(text: &str) -> bool {
    ctiport_model::Timestamp::parse_stix(text).is_some()
}
