//! What can stop a push to MISP, each with the likely cause in its message. (A single event that
//! MISP refuses does not stop the push: it is counted and reported, see `sink`.)

use crate::SinkError;

#[derive(Debug, thiserror::Error)]
pub enum MispError {
    /// The options are wrong before anything is sent.
    #[error("{0}")]
    Config(String),
    /// The instance refused the key or the user's role: nothing will succeed.
    #[error("{0}")]
    Denied(String),
    /// The instance answered something the push cannot go on from.
    #[error("{0}")]
    Refused(String),
    /// Retries ran out on 429, 5xx or connection errors.
    #[error("{what}: gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        what: String,
        attempts: u32,
        last: String,
    },
}

impl From<MispError> for SinkError {
    fn from(error: MispError) -> Self {
        SinkError::Other(format!("MISP: {error}"))
    }
}
