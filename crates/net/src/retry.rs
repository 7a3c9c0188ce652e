//! How long to wait before trying again: the server's `Retry-After` in all its forms, capped, or
//! full-jitter exponential backoff.

use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest wait accepted from a server; anything longer is treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How long a `Retry-After` asks to wait: whole seconds (`10`), a fraction (Graph has sent
/// `2.128`; peers that parse an integer fail on it and retry at once) or an HTTP date. `None`
/// when absent or unreadable (then: backoff).
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

/// The wait a response's `Retry-After` header asks for, if it has a readable one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The longest backoff between two tries.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// A random wait in `[0, min(30 s, 0.5 s · 2^attempt)]` (attempt 0 = after the first failure).
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_CAP);
    Duration::from_secs_f64(rand::rng().random_range(0.0..=ceiling.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_every_documented_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(
            parse_retry_after(" 2.128 ", now),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        let in_30s = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&in_30s, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "soon", "-1", "NaN", "inf"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn backoff_is_bounded_full_jitter() {
        for attempt in 0..40 {
            let wait = backoff(attempt);
            assert!(wait <= BACKOFF_CAP);
            assert!(wait <= BACKOFF_BASE * 2u32.saturating_pow(attempt.min(16)));
        }
    }

    proptest! {
        #[test]
        fn any_non_negative_number_is_a_capped_wait(seconds in 0.0f64..1e9) {
            let wait = parse_retry_after(&format!("{seconds}"), SystemTime::now());
            prop_assert!(wait.is_some_and(|w| w <= MAX_RETRY_AFTER));
        }

        #[test]
        fn never_panics(text in ".*") {
            let _ = parse_retry_after(&text, SystemTime::now());
        }
    }
}
