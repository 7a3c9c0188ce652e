//! When to try a request again and how long to wait first: full-jitter exponential backoff, or
//! the server's `Retry-After`, capped (both shared with the Graph source, in ctiport-model).
//! Shared by every pushing sink (TAXII, MISP REST).

use reqwest::StatusCode;

pub use ctiport_model::net::{MAX_RETRY_AFTER, backoff, parse_retry_after};

/// Statuses that can succeed on retry: throttling and transient server trouble.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_retryable(StatusCode::from_u16(code).unwrap_or_default()));
        }
        for code in [400, 401, 403, 404, 406, 413, 415, 422] {
            assert!(!is_retryable(
                StatusCode::from_u16(code).unwrap_or_default()
            ));
        }
    }
}
