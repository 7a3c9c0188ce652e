//! `Retry-After`: seconds as an integer (`10`), as a fraction (Graph has sent `2.128`), or an
//! HTTP date. Peers that parse it as an integer fail on the fraction and retry at once, which is
//! exactly what makes throttling worse.

use std::time::{Duration, SystemTime};

/// The longest wait ctiport accepts from a server; anything longer is treated as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How long to wait, or `None` when the header is absent or unreadable (then: backoff).
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
