//! Timestamps: lenient on the way in, exact on the way out.
//!
//! Graph mixes precisions (`2020-02-24T00:00:00Z`, `2022-05-02T23:09:20.000Z`) and error bodies even
//! drop the zone. STIX needs `created`/`modified` with at least millisecond precision, and
//! stix2-validator 3.2.0 compares timestamps as strings, so every timestamp ctiport writes has
//! exactly three fractional digits and a `Z`.
//!
//! Every consumer reads timestamps with Python's `datetime` (stix2-validator, stix2, PyMISP), which
//! knows neither year 0 nor year 10000 nor a leap second (`:60`). A [`Timestamp`] is therefore
//! always within 0001-01-01 and 9999-12-31 and never on a leap second: parsing refuses anything
//! else ([`Unusable::OutOfRange`]), and arithmetic saturates at the edges.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Timelike as _, Utc};
use serde::{Serialize, Serializer};

/// A UTC instant truncated to milliseconds, printed as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// Why a text is not a timestamp ctiport can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    NotADate,
    /// A date, but one STIX consumers cannot represent: before year 1, after year 9999, or a
    /// leap second.
    OutOfRange,
}

/// 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z, in Unix milliseconds.
const FIRST_MILLIS: i64 = -62_135_596_800_000;
const LAST_MILLIS: i64 = 253_402_300_799_999;

fn first() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(FIRST_MILLIS).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn last() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(LAST_MILLIS).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// chrono holds a leap second as nanoseconds past a billion.
fn is_leap_second(instant: &DateTime<Utc>) -> bool {
    instant.nanosecond() >= 1_000_000_000
}

impl Timestamp {
    /// Wraps an instant, dropping anything finer than a millisecond. An instant STIX cannot
    /// represent is brought to the nearest one it can: a leap second to the last millisecond
    /// before it, a date beyond the years 0001 to 9999 to that range's edge.
    pub fn new(instant: DateTime<Utc>) -> Self {
        let instant = if is_leap_second(&instant) {
            instant.with_nanosecond(999_999_999).unwrap_or(instant)
        } else {
            instant
        };
        Timestamp(instant.trunc_subsecs(3).clamp(first(), last()))
    }

    /// The Unix epoch: the documented fallback when the source gives no date at all.
    pub fn epoch() -> Self {
        Timestamp(DateTime::<Utc>::UNIX_EPOCH)
    }

    pub fn now() -> Self {
        Self::new(Utc::now())
    }

    /// Parses RFC 3339 with any fractional precision; a missing zone is read as UTC (Graph's
    /// `innerError.date` has none). `None` for anything [`Timestamp::parse_checked`] refuses.
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_checked(text).ok()
    }

    /// [`Timestamp::parse`], saying why a text is refused: not a date at all, or a date STIX
    /// consumers cannot represent (year 0000, a leap second), which must not be moved silently.
    pub fn parse_checked(text: &str) -> Result<Self, Unusable> {
        let instant = instant(text).ok_or(Unusable::NotADate)?;
        let millis = instant.timestamp_millis();
        if is_leap_second(&instant) || !(FIRST_MILLIS..=LAST_MILLIS).contains(&millis) {
            return Err(Unusable::OutOfRange);
        }
        Ok(Self::new(instant))
    }

    /// A timestamp exactly as STIX 2.1 writes one and stix2-validator accepts it:
    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (RFC 3339 in UTC, upper-case `T` and `Z`), within the
    /// years 0001 to 9999 and never on a leap second.
    pub fn parse_stix(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits = |from: usize, to: usize| b[from..to].iter().all(u8::is_ascii_digit);
        let shaped = b.len() >= 20
            && digits(0, 4)
            && b[4] == b'-'
            && digits(5, 7)
            && b[7] == b'-'
            && digits(8, 10)
            && b[10] == b'T'
            && digits(11, 13)
            && b[13] == b':'
            && digits(14, 16)
            && b[16] == b':'
            && digits(17, 19)
            && b[b.len() - 1] == b'Z'
            && (b.len() == 20 || (b[19] == b'.' && b.len() > 21 && digits(20, b.len() - 1)));
        shaped.then(|| Self::parse_checked(text).ok()).flatten()
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// This instant plus a number of days, saturating at 9999-12-31T23:59:59.999Z.
    pub fn plus_days(&self, days: u32) -> Self {
        let delta = TimeDelta::try_days(i64::from(days)).unwrap_or(TimeDelta::MAX);
        Self::new(self.0.checked_add_signed(delta).unwrap_or_else(last))
    }

    /// This instant plus one millisecond: the smallest strictly later STIX version (saturating
    /// at 9999-12-31T23:59:59.999Z).
    pub fn next_millisecond(&self) -> Self {
        Self::new(self.0 + TimeDelta::milliseconds(1))
    }
}

/// The instant a text names, in any of the spellings [`Timestamp::parse`] takes.
fn instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc());
        }
    }
    // A bare date (`2024-01-31`) is midnight UTC.
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
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

    #[test]
    fn refuses_what_stix_cannot_represent() {
        for input in [
            "0000-01-01T00:00:00Z",
            "0000-06-15T12:00:00.000Z",
            "0001-01-01T00:30:00+01:00",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.500Z",
            "2024-03-05T10:15:60Z",
        ] {
            assert_eq!(Timestamp::parse(input), None, "{input}");
            assert_eq!(
                Timestamp::parse_checked(input),
                Err(Unusable::OutOfRange),
                "{input}"
            );
            assert_eq!(Timestamp::parse_stix(input), None, "{input}");
        }
        assert_eq!(Timestamp::parse_checked("soon"), Err(Unusable::NotADate));
        // The edges themselves are fine, and an offset may carry a date into range.
        for (input, expected) in [
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
            ("0000-12-31T23:00:00-02:00", "0001-01-01T01:00:00.000Z"),
        ] {
            assert_eq!(
                Timestamp::parse(input).map(|t| t.to_string()).as_deref(),
                Some(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn stix_timestamps_are_rfc3339_in_utc_as_stix_writes_them() {
        for good in [
            "2024-01-31T00:00:00Z",
            "2024-01-31T00:00:00.1Z",
            "2024-01-31T00:00:00.123456Z",
        ] {
            assert!(Timestamp::parse_stix(good).is_some(), "{good}");
        }
        for bad in [
            "2024-01-31",
            "2024-01-31T00:00:00",
            "2024-01-31T00:00:00+00:00",
            "2024-01-31 00:00:00Z",
            "2024-01-31t00:00:00z",
            "2024-01-31T00:00:00.Z",
            "2024-1-31T00:00:00Z",
            "+2024-01-31T00:00:00Z",
            "0000-01-31T00:00:00Z",
            "2024-01-31T23:59:60Z",
            "2024-02-30T00:00:00Z",
        ] {
            assert!(Timestamp::parse_stix(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn arithmetic_stays_within_what_stix_can_represent() {
        let last = Timestamp::parse("9999-12-31T23:59:59.999Z").unwrap();
        assert_eq!(last.plus_days(400).to_string(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            last.next_millisecond().to_string(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    /// What `stix2-validator` accepts, spelled out independently of the parser under test.
    fn stix_shaped(text: &str) -> bool {
        let b = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
        text.len() == 24
            && digits(0..4)
            && &text[..4] != "0000"
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && &text[11..13] < "24"
            && b[13] == b':'
            && digits(14..16)
            && &text[14..16] < "60"
            && b[16] == b':'
            && digits(17..19)
            && &text[17..19] < "60"
            && b[19] == b'.'
            && digits(20..23)
            && b[23] == b'Z'
    }

    proptest! {
        #[test]
        fn every_timestamp_prints_as_a_stix_timestamp_and_reads_back(
            secs in -62_135_596_800i64 - 86_400 * 400..253_402_300_800 + 86_400 * 400,
            nanos in 0u32..2_000_000_000,
            days in 0u32..1_000_000,
        ) {
            // Nanoseconds past a billion are chrono's leap second.
            let Some(instant) = DateTime::<Utc>::from_timestamp(secs, nanos) else {
                return Ok(());
            };
            let t = Timestamp::new(instant);
            for t in [t, t.plus_days(days), t.next_millisecond()] {
                let text = t.to_string();
                prop_assert!(stix_shaped(&text), "{}", text);
                prop_assert_eq!(Timestamp::parse_stix(&text), Some(t));
                prop_assert_eq!(Timestamp::parse(&text), Some(t));
            }
        }

        #[test]
        fn what_parses_prints_as_a_stix_timestamp(
            year in 0u32..10_000, month in 1u32..13, day in 1u32..32,
            hour in 0u32..24, minute in 0u32..60, second in 0u32..61,
            fraction in "(\\.[0-9]{1,9})?", zone in "Z|[+-](0[0-9]|1[0-4]):[0-5][0-9]",
        ) {
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{zone}");
            if let Some(t) = Timestamp::parse(&text) {
                prop_assert!(second < 60 && stix_shaped(&t.to_string()), "{} -> {}", text, t);
            }
        }

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
