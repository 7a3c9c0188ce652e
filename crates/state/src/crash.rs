//! Test hook: `CTIPORT_TEST_CRASH_AT=<point>` kills the process with SIGKILL when the run reaches
//! `<point>`, so that the end-to-end tests (`tests/e2e/test_state.py`) can check what a `kill -9`
//! at that moment leaves. Without the variable nothing happens.

use std::sync::OnceLock;

/// Where a run can be killed, named in `CTIPORT_TEST_CRASH_AT` as [`CrashPoint::name`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// `mapping`: right after the versions of the first [`MAPPING_CRASH_PROFILES`] profiles are
    /// committed, so that the store holds the versions of part of the source.
    Mapping,
    /// `sinks-written`: every sink has its data, none has committed.
    SinksWritten,
    /// `before-ack`: the sinks committed, no acknowledgement is stored.
    BeforeAck,
}

/// The profiles [`CrashPoint::Mapping`] lets the versioner store first: more than one, so that a
/// killed run leaves a store between two complete ones, and fewer than the samples hold.
pub const MAPPING_CRASH_PROFILES: u64 = 3;

impl CrashPoint {
    /// The value of `CTIPORT_TEST_CRASH_AT` that selects this point.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::Mapping => "mapping",
            CrashPoint::SinksWritten => "sinks-written",
            CrashPoint::BeforeAck => "before-ack",
        }
    }

    /// Whether the test asked to be killed here.
    pub(crate) fn requested(self) -> bool {
        static TARGET: OnceLock<Option<String>> = OnceLock::new();
        let target = TARGET.get_or_init(|| std::env::var("CTIPORT_TEST_CRASH_AT").ok());
        target.as_deref() == Some(self.name())
    }
}

/// Kills the process when the test asked for `point`.
pub fn crash_point(point: CrashPoint) {
    if point.requested() {
        tracing::warn!(
            "CTIPORT_TEST_CRASH_AT={}: killing the process",
            point.name()
        );
        // kill(1), not an exit: no destructor, flush or commit runs, as with a real kill -9.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}
