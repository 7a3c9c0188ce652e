//! Throttling: a token bucket for `--rate`/`--burst`, a long storm of consecutive 429s
//! (`--storm-*`), the `Retry-After` header in the spellings real Graph uses (§8.2: integer `10`,
//! fractional `2.128`, or none), and the tracker that counts requests arriving before the client
//! was told it may come back.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use crate::lock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RetryAfterFormat {
    /// Seconds with millisecond precision, e.g. `2.128` (rounded up).
    Fractional,
    /// Whole seconds, rounded up (at least 1).
    Integer,
    /// An IMF-fixdate (RFC 9110), rounded up to the next whole second.
    HttpDate,
    /// No header at all: the client must fall back to its own backoff.
    Absent,
}

/// What one 429/503 tells the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    pub header: Option<String>,
    /// The wait the header promises (after rounding); `None` when there is no header.
    pub promised: Option<Duration>,
}

/// Formats a wait. Rounding is always *up*, so a client that obeys the header to the letter is
/// never early.
pub fn retry_after(wait: Duration, format: RetryAfterFormat, now: SystemTime) -> RetryAfter {
    match format {
        RetryAfterFormat::Fractional => {
            let millis = wait.as_nanos().div_ceil(1_000_000).max(1);
            let millis = u64::try_from(millis).unwrap_or(u64::MAX);
            RetryAfter {
                header: Some(format!("{}.{:03}", millis / 1000, millis % 1000)),
                promised: Some(Duration::from_millis(millis)),
            }
        }
        RetryAfterFormat::Integer => {
            let secs = wait.as_nanos().div_ceil(1_000_000_000).max(1);
            let secs = u64::try_from(secs).unwrap_or(u64::MAX);
            RetryAfter {
                header: Some(secs.to_string()),
                promised: Some(Duration::from_secs(secs)),
            }
        }
        RetryAfterFormat::HttpDate => {
            let target = now + wait;
            let since_epoch = target.duration_since(UNIX_EPOCH).unwrap_or_default();
            let whole = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
            let rounded = UNIX_EPOCH + Duration::from_secs(whole);
            RetryAfter {
                header: Some(httpdate::fmt_http_date(rounded)),
                promised: Some(rounded.duration_since(now).unwrap_or_default()),
            }
        }
        RetryAfterFormat::Absent => RetryAfter {
            header: None,
            promised: None,
        },
    }
}

/// Classic token bucket: `burst` tokens, refilled at `rate` per second; one per request.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        TokenBucket {
            // A zero or negative rate would make every wait infinite.
            rate: rate.max(1e-6),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        // The epsilon absorbs float error, so a client returning exactly on time gets through.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(3600)))
        }
    }
}

/// `--storm-secs`, `--storm-after`, `--storm-wait-ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StormPlan {
    /// The storm begins with the first Graph request after this many.
    pub after: u64,
    pub duration: Duration,
    /// The wait each 429 of the storm announces.
    pub wait: Duration,
}

/// A long throttle storm: from its start, every Graph request gets 429 for `duration`, each
/// with the same short `Retry-After`, so a client obeying it meets many 429s in a row (real
/// services shed load this way while overloaded: the promise is a pacing hint, not a slot).
#[derive(Debug)]
pub struct Storm {
    plan: Option<StormPlan>,
    started: Mutex<Option<Instant>>,
}

impl Storm {
    pub fn new(plan: Option<StormPlan>) -> Self {
        Storm {
            plan,
            started: Mutex::new(None),
        }
    }

    /// The wait to announce if the `number`-th Graph request (1-based), arriving `now`, falls
    /// into the storm.
    pub fn wait(&self, number: u64, now: Instant) -> Option<Duration> {
        let plan = self.plan?;
        if number <= plan.after {
            return None;
        }
        let started = *lock(&self.started).get_or_insert(now);
        (now < started + plan.duration).then_some(plan.wait)
    }
}

/// Counts requests that arrive while the client was told to wait.
///
/// A request counts as early when it arrives after `issued + tolerance` (before that it may
/// have been sent before the client could read the 429: other workers' requests in flight)
/// and before `until - tolerance`.
#[derive(Debug)]
pub struct Compliance {
    tolerance: Duration,
    notices: Vec<(Instant, Instant)>,
}

impl Compliance {
    pub fn new(tolerance: Duration) -> Self {
        Compliance {
            tolerance,
            notices: Vec::new(),
        }
    }

    /// Records that a client was told at `issued` to wait until `until`.
    pub fn told(&mut self, issued: Instant, until: Instant) {
        self.notices.push((issued, until));
    }

    /// Whether a request arriving `now` disobeys a notice; forgets notices that have run out.
    pub fn is_early(&mut self, now: Instant) -> bool {
        self.notices.retain(|&(_, until)| until > now);
        self.notices
            .iter()
            .any(|&(issued, until)| now >= issued + self.tolerance && now + self.tolerance < until)
    }

    pub fn clear(&mut self) {
        self.notices.clear();
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_spellings() {
        let now = at(1_700_000_000);
        let wait = Duration::from_micros(2_127_400);
        let f = retry_after(wait, RetryAfterFormat::Fractional, now);
        assert_eq!(f.header.as_deref(), Some("2.128"));
        assert_eq!(f.promised, Some(Duration::from_millis(2128)));
        let i = retry_after(wait, RetryAfterFormat::Integer, now);
        assert_eq!(i.header.as_deref(), Some("3"));
        let tiny = retry_after(Duration::from_micros(10), RetryAfterFormat::Integer, now);
        assert_eq!(tiny.header.as_deref(), Some("1"));
        let tiny = retry_after(Duration::ZERO, RetryAfterFormat::Fractional, now);
        assert_eq!(tiny.header.as_deref(), Some("0.001"));
        let d = retry_after(wait, RetryAfterFormat::HttpDate, now);
        assert_eq!(d.header.as_deref(), Some("Tue, 14 Nov 2023 22:13:23 GMT"));
        assert_eq!(d.promised, Some(Duration::from_secs(3)));
        let parsed = httpdate::parse_http_date(d.header.as_deref().unwrap_or_default());
        assert_eq!(parsed.ok(), Some(at(1_700_000_003)));
        let a = retry_after(wait, RetryAfterFormat::Absent, now);
        assert_eq!(
            a,
            RetryAfter {
                header: None,
                promised: None
            }
        );
    }

    #[test]
    fn bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(2.0, 2.0, t0);
        assert!(bucket.try_take(t0).is_ok());
        assert!(bucket.try_take(t0).is_ok());
        let wait = bucket.try_take(t0).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(bucket.try_take(t0 + Duration::from_millis(499)).is_err());
        assert!(bucket.try_take(t0 + Duration::from_millis(500)).is_ok());
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(100);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn a_storm_throttles_everything_for_its_duration() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let storm = Storm::new(Some(StormPlan {
            after: 2,
            duration: ms(1000),
            wait: ms(250),
        }));
        assert_eq!(storm.wait(1, t0), None);
        assert_eq!(storm.wait(2, t0 + ms(10)), None);
        assert_eq!(storm.wait(3, t0 + ms(100)), Some(ms(250)), "starts here");
        assert_eq!(storm.wait(9, t0 + ms(1099)), Some(ms(250)));
        assert_eq!(storm.wait(10, t0 + ms(1100)), None, "and is over");
        assert_eq!(Storm::new(None).wait(5, t0), None);
    }

    #[test]
    fn compliance_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Compliance::new(ms(20));
        c.told(t0, t0 + ms(1000));
        assert!(!c.is_early(t0 + ms(5)), "in flight when the 429 went out");
        assert!(c.is_early(t0 + ms(100)));
        assert!(!c.is_early(t0 + ms(985)), "within the tolerance");
        assert!(!c.is_early(t0 + ms(1000)));
        assert!(!c.is_early(t0 + ms(100)), "expired notices are forgotten");
    }
}
