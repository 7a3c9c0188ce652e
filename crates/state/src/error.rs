//! The one error of the state store.

/// What went wrong with the state file, in words: which file, or which object, and why. The store
/// is one SQLite file that either answers or does not; callers report the message and stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(String);

impl From<String> for StateError {
    fn from(message: String) -> Self {
        StateError(message)
    }
}
