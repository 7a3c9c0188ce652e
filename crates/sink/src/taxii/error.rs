//! What can go wrong talking to a TAXII server, each with the likely cause in its message.

use crate::SinkError;

#[derive(Debug, thiserror::Error)]
pub enum TaxiiError {
    /// The options are wrong before anything is sent.
    #[error("{0}")]
    Config(String),
    /// The server answered, and the answer means the push cannot go on.
    #[error("{0}")]
    Refused(String),
    /// Retries ran out on 429, 5xx or connection errors.
    #[error("{what}: gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        what: String,
        attempts: u32,
        last: String,
    },
    /// An object cannot be sent in any envelope the server accepts.
    #[error(
        "object {id} is {bytes} bytes serialized, more than the {limit} bytes an envelope may \
         hold under the API root's max_content_length"
    )]
    ObjectTooLarge {
        id: String,
        bytes: usize,
        limit: usize,
    },
    /// Objects the server did not store.
    #[error("{0}")]
    ObjectsFailed(String),
}

impl From<TaxiiError> for SinkError {
    fn from(error: TaxiiError) -> Self {
        SinkError::Other(format!("TAXII: {error}"))
    }
}
