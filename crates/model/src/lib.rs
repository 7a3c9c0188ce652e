//! The shared vocabulary of ctiport: the Microsoft Graph Threat Intelligence input types (parsed
//! leniently, because the live API drifts from its schema), the STIX 2.1 output objects, and the
//! records that flow between the source, transform and sink stages.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

pub mod graph;
pub mod host;
pub mod pct;
pub mod record;
pub mod selection;
pub mod stix;
pub mod table;
pub mod timestamp;

pub use record::{Mapped, MappedIndicator, MappedProfile, Rejection, SourceRecord};
pub use timestamp::Timestamp;
