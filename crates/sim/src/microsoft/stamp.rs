//! RFC 3339 timestamps as STIX (`modified`, `valid_from`) and Defender (`expirationTime`) write
//! them, read into a comparable instant: versions are ordered by `modified` exactly, to the
//! digit a client sent.

/// Nanoseconds since the Unix epoch.
pub type Stamp = i128;

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `None` for anything else, including impossible
/// dates. STIX requires `Z` (`require_z`); Defender's DateTimeOffset also takes an offset.
pub fn parse(text: &str, require_z: bool) -> Option<Stamp> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&text[0..4])?;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    let hour = digits(&text[11..13])?;
    let minute = digits(&text[14..16])?;
    let second = digits(&text[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: i128 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > 9 {
            return None;
        }
        let scale = 10i128.pow(u32::try_from(9 - len).ok()?);
        nanos = i128::from(digits(&fraction[..len])?) * scale;
        rest = &fraction[len..];
    }
    let offset_secs = match rest {
        "Z" => 0,
        _ if require_z => return None,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            let (h, m) = (digits(h)?, digits(m)?);
            if h > 23 || m > 59 || h.to_string().len() > 2 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// Seconds since the epoch as a [`Stamp`].
pub fn from_unix(secs: i64) -> Stamp {
    i128::from(secs) * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(parse("1970-01-01T00:00:00Z", true), Some(0));
        assert_eq!(
            parse("2020-02-29T00:00:00.007Z", true),
            Some(1_582_934_400_007_000_000)
        );
        // More fractional digits order finer: .1234567 after .123.
        assert!(
            parse("2024-05-01T10:20:30.1234567Z", true) > parse("2024-05-01T10:20:30.123Z", true)
        );
        assert_eq!(
            parse("2024-05-01T12:20:30+02:00", false),
            parse("2024-05-01T10:20:30Z", true)
        );
        for bad in [
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-05-01 10:20:30Z",
            "2024-05-01T10:20:30",
            "2024-05-01T10:20:30.Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:20:30+02:00",
        ] {
            assert_eq!(parse(bad, true), None, "{bad}");
        }
        assert_eq!(from_unix(2), 2_000_000_000);
    }
}
