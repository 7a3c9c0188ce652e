//! `--state <file>`: the store that makes a scheduled run incremental (docs/state.md).
//!
//! The mapping thread versions every object against the store ([`versioner`]); each sink's
//! driver hands its sink only what that sink has not acknowledged ([`delivery`]); the run records
//! a sink's acknowledgement only after the sink committed. A run killed at any point leaves
//! versions without acknowledgements, which the next run sends again, unchanged.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

pub mod delivery;
pub mod restamp;
pub mod store;
pub mod versioner;

pub use store::Store;
pub use versioner::{Coverage, VersionCounts, Versioner};

/// Test hook: `CTIPORT_TEST_CRASH_AT=<point>` kills the process with SIGKILL when the run reaches
/// `<point>`, so that the end-to-end tests can check what a `kill -9` at that moment leaves.
/// Points: `mapping` (versions committed for part of the source), `sinks-written` (every sink
/// has its data, none has committed), `before-ack` (sinks committed, no acknowledgement stored).
pub fn crash_point(point: &str) {
    if crash_requested(point) {
        tracing::warn!("CTIPORT_TEST_CRASH_AT={point}: killing the process");
        // kill(1), not an exit: no destructor, flush or commit runs, as with a real kill -9.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

pub fn crash_requested(point: &str) -> bool {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("CTIPORT_TEST_CRASH_AT").ok());
    target.as_deref() == Some(point)
}
