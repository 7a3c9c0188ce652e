//! What can go wrong talking to Graph, split by what the run should do about it.

use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum GraphError {
    /// The token endpoint refused the credentials, or Graph refused a fresh token.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// 403: the app lacks the permission or the tenant the licence.
    #[error(
        "access denied by Microsoft Graph (403 {code}): the app registration needs the application permission \
ThreatIntelligence.Read.All with admin consent, and the tenant needs a Defender Threat Intelligence licence with the API add-on"
    )]
    Forbidden { code: String },
    #[error("not found (404): {url}")]
    NotFound { url: String },
    /// A request Graph will never accept (400 and other 4xx): retrying cannot help.
    #[error("request rejected ({status} {code}): {url}")]
    Rejected {
        status: u16,
        code: String,
        url: String,
    },
    /// Every attempt failed with a retryable error.
    #[error("gave up after {attempts} attempts: {url}: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        last: String,
    },
    /// Too many consecutive failures across the whole run: the service is down or refusing us.
    #[error("stopping: {failures} consecutive requests failed, last: {last}")]
    CircuitOpen { failures: u32, last: String },
    #[error("{0}")]
    Invalid(String),
}

impl GraphError {
    /// Errors after which the rest of the run cannot succeed either.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            GraphError::Auth(_) | GraphError::Forbidden { .. } | GraphError::CircuitOpen { .. }
        )
    }
}
