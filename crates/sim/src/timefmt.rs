//! UTC date formatting without a calendar crate: the simulator only ever needs to print
//! timestamps (generated data, error bodies), never to parse them.

use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Seconds since the Unix epoch → UTC calendar time (Howard Hinnant's `civil_from_days`).
pub fn civil(epoch_secs: i64) -> Civil {
    let days = epoch_secs.div_euclid(86_400);
    let secs_of_day = epoch_secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: secs_of_day / 3600,
        minute: secs_of_day / 60 % 60,
        second: secs_of_day % 60,
    }
}

/// Fractional-second spelling of a generated timestamp. Graph mixes all of these (§7.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fraction {
    /// `…:20Z`
    None,
    /// `…:20.123Z` (three digits, possibly `.000`)
    Millis(u32),
    /// `…:20.1234567Z` (.NET ticks, seven digits)
    Ticks(u32),
}

/// RFC 3339 in UTC with a `Z` designator.
pub fn rfc3339(epoch_secs: i64, fraction: Fraction) -> String {
    let c = civil(epoch_secs);
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    match fraction {
        Fraction::None => format!("{base}Z"),
        Fraction::Millis(ms) => format!("{base}.{:03}Z", ms % 1000),
        Fraction::Ticks(ticks) => format!("{base}.{:07}Z", ticks % 10_000_000),
    }
}

fn epoch_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `innerError.date` of Graph errors: ISO 8601 **without** a zone designator (§7.6, §8.2).
pub fn inner_error_date(time: SystemTime) -> String {
    let c = civil(epoch_secs(time));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `timestamp` of Entra token errors, e.g. `2024-05-01 10:20:30Z`.
pub fn aad_timestamp(time: SystemTime) -> String {
    let c = civil(epoch_secs(time));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0, Fraction::None), "1970-01-01T00:00:00Z");
        // 2020-02-29 is a leap day; 1582934400 = 2020-02-29T00:00:00Z.
        assert_eq!(
            rfc3339(1_582_934_400, Fraction::Millis(7)),
            "2020-02-29T00:00:00.007Z"
        );
        assert_eq!(
            rfc3339(1_651_532_960, Fraction::Ticks(1_234_567)),
            "2022-05-02T23:09:20.1234567Z"
        );
        assert_eq!(rfc3339(-1, Fraction::None), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn error_body_dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_597_755_111);
        assert_eq!(inner_error_date(t), "2020-08-18T12:51:51");
        assert_eq!(aad_timestamp(t), "2020-08-18 12:51:51Z");
    }
}
