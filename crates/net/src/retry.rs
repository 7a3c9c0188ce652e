//! What every client of a network service shares, the Graph source and the pushing sinks alike:
//! secrets that never print themselves, `Retry-After` in all its forms, and backoff with full
//! jitter.

use std::fmt;
use std::time::{Duration, SystemTime};

use rand::Rng as _;

/// A string that never shows itself: not in `Debug`, not in `Display`, not in logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to the value: call sites that put it on the wire, and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `text` with any `user:password@` in a URL's authority replaced by `***@`, for messages: a
/// credential written into a URL must not reach a log line.
pub fn redact_userinfo(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_owned(),
    }
}

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
    fn secrets_never_print_their_value() {
        let secret = Secret::new("hunter2-very-secret");
        assert!(!format!("{secret:?} {secret} {:?}", Some(&secret)).contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn redacts_credentials_in_urls_only() {
        assert_eq!(
            redact_userinfo("taxii:https://u:pw@ti.example/api/"),
            "taxii:https://***@ti.example/api/"
        );
        assert_eq!(
            redact_userinfo("https://misp.example/?a=b@c"),
            "https://misp.example/?a=b@c"
        );
        assert_eq!(redact_userinfo("stix:out/a@b.json"), "stix:out/a@b.json");
    }

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
