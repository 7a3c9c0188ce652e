//! Timestamps: lenient on the way in, exact on the way out.
//!
//! Graph mixes precisions (`2020-02-24T00:00:00Z`, `2022-05-02T23:09:20.000Z`) and error bodies even
//! drop the zone. STIX needs `created`/`modified` with at least millisecond precision, and
//! stix2-validator 3.2.0 compares timestamps as strings, so every timestamp ctiport writes has
//! exactly three fractional digits and a `Z`.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Utc};
use serde::{Serialize, Serializer};

/// A UTC instant truncated to milliseconds, printed as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Wraps an instant, dropping anything finer than a millisecond.
    pub fn new(instant: DateTime<Utc>) -> Self {
        Timestamp(instant.trunc_subsecs(3))
    }

    /// The Unix epoch: the documented fallback when the source gives no date at all.
    pub fn epoch() -> Self {
        Timestamp(DateTime::<Utc>::UNIX_EPOCH)
    }

    pub fn now() -> Self {
        Self::new(Utc::now())
    }

    /// Parses RFC 3339 with any fractional precision; a missing zone is read as UTC (Graph's
    /// `innerError.date` has none).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::new(parsed.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
                return Some(Self::new(naive.and_utc()));
            }
        }
        // A bare date (`2024-01-31`) is midnight UTC.
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|naive| Self::new(naive.and_utc()))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// This instant plus a number of days, saturating at the end of chrono's range.
    pub fn plus_days(&self, days: u32) -> Self {
        let delta = TimeDelta::try_days(i64::from(days)).unwrap_or(TimeDelta::MAX);
        Timestamp(
            self.0
                .checked_add_signed(delta)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        )
    }

    /// This instant plus one millisecond: the smallest strictly later STIX version.
    pub fn next_millisecond(&self) -> Self {
        Timestamp(self.0 + TimeDelta::milliseconds(1))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_every_precision_to_milliseconds() {
        for (input, expected) in [
            ("2020-02-24T00:00:00Z", "2020-02-24T00:00:00.000Z"),
            ("2022-05-02T23:09:20.000Z", "2022-05-02T23:09:20.000Z"),
            ("2023-03-07T13:59:34.735Z", "2023-03-07T13:59:34.735Z"),
            ("2023-03-07T13:59:34.7356789Z", "2023-03-07T13:59:34.735Z"),
            ("2023-03-07T15:59:34.7+02:00", "2023-03-07T13:59:34.700Z"),
            ("2020-08-18T12:51:51", "2020-08-18T12:51:51.000Z"),
            ("2024-01-31", "2024-01-31T00:00:00.000Z"),
        ] {
            assert_eq!(
                Timestamp::parse(input).map(|t| t.to_string()).as_deref(),
                Some(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for input in ["", "null", "yesterday", "2024-13-01T00:00:00Z"] {
            assert_eq!(Timestamp::parse(input), None, "{input}");
        }
    }

    proptest! {
        #[test]
        fn output_always_has_three_fraction_digits_and_reparses(secs in 0i64..4_102_444_800, nanos in 0u32..1_000_000_000) {
            let instant = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap_or_default();
            let text = Timestamp::new(instant).to_string();
            let re_ok = text.len() == 24 && text.ends_with('Z') && text.as_bytes()[19] == b'.';
            prop_assert!(re_ok, "{}", text);
            prop_assert_eq!(Timestamp::parse(&text), Some(Timestamp::new(instant)));
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = Timestamp::parse(&text);
        }
    }
}
