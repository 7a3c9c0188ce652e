//! `--state <file>`: the store that makes a scheduled run incremental (docs/state.md).
//!
//! A run goes through the store in this order:
//!
//! 1. [`Store::open`] the file and [`Versioner::begin_run`] on it.
//! 2. Before anything is sent: [`Versioner::version_preamble`], and for each sink its
//!    [`Versioner::position`]: the last run it acknowledged.
//! 3. In the mapping thread, record by record: [`Versioner::version`] gives every object its
//!    version; [`Versioner::rejected`] notes what could not be mapped (it may hold back
//!    revocations).
//! 4. After the source: [`Versioner::finish_listing`] revokes what a complete listing no longer
//!    holds, and [`Versioner::revocations_after`] streams the revocations the lagging sinks miss.
//! 5. Each sink's driver hands its sink only what it still needs: a [`Selector`] turns every
//!    record into that sink's [`View`].
//! 6. After the sinks committed: [`Versioner::may_lack_versions`], then
//!    [`Versioner::acknowledge`] each sink that holds the run, and [`Versioner::finish_run`].
//!
//! A run killed at any point leaves versions without acknowledgements, which the next run sends
//! again, unchanged. [`crash_point`] lets the end-to-end tests kill a run at chosen points.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

mod crash;
mod delivery;
mod error;
#[cfg(test)]
mod fixtures;
mod restamp;
mod store;
mod versioner;

pub use crash::{CrashPoint, MAPPING_CRASH_PROFILES, crash_point};
pub use delivery::{DeltaCounts, Position, Selector, View};
pub use error::StateError;
pub use store::Store;
pub use versioner::{Coverage, Held, VersionCounts, Versioner};
