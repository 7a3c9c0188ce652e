//! When to try a request again and how long to wait first: full-jitter exponential backoff, or
//! the server's `Retry-After` (seconds, fractional seconds or an HTTP date), capped. Shared by
//! every pushing sink (TAXII, MISP REST).

use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::StatusCode;

const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The longest wait accepted from a server; anything longer is treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

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

/// A random wait in `[0, min(cap, base·2^attempt)]` (attempt 0 = after the first failure).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_CAP);
    Duration::from_secs_f64(rand::rng().random_range(0.0..=ceiling.as_secs_f64()))
}

/// The wait a `Retry-After` value asks for, or `None` when it is unreadable (then: backoff).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        return Some(Duration::from_secs_f64(
            seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
        ));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_in_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(20));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "-3", "later", "NaN"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

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

    proptest! {
        #[test]
        fn backoff_is_bounded(attempt in 0u32..1000) {
            let wait = backoff(attempt);
            prop_assert!(wait <= BACKOFF_CAP);
            prop_assert!(wait <= BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt.min(16))));
        }

        #[test]
        fn retry_after_never_panics(text in ".*") {
            let _ = parse_retry_after(&text, SystemTime::now());
        }
    }
}
