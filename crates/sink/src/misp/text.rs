//! Free text bound for MISP's utf8mb3 columns (event `info`, attribute `comment`, tag names, the
//! organisation and report names) and the MISP forms of ctiport's timestamps.
//!
//! utf8mb3 cannot hold 4-byte UTF-8 (emoji, mathematical alphanumerics such as 𝕏). MISP replaces
//! such characters in attribute values with `?`; in other columns a strict MySQL refuses the row.
//! ctiport replaces them with `?` in every utf8mb3 column, like MISP, so what it writes is what MISP
//! stores. The EventReport `content` column is utf8mb4 and keeps the text verbatim.

use ctiport_model::timestamp::Timestamp;

use super::normalize::replace_supplementary;

/// A one-line text for a utf8mb3 column: 4-byte characters become `?`, control characters
/// (newlines, tabs) become spaces, surrounding white space is trimmed, and the text is cut to
/// `max_chars` characters (ending with `…` when cut).
pub fn single_line(text: &str, max_chars: usize) -> String {
    let cleaned: String = replace_supplementary(text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(cleaned.trim(), max_chars)
}

/// A multi-line text for a utf8mb3 column (a comment): 4-byte characters become `?`.
pub fn multi_line(text: &str) -> String {
    replace_supplementary(text).into_owned()
}

/// Cuts a text to `max_chars` characters, marking the cut with `…`.
pub fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Line endings normalized to `\n` (Graph's markdown uses `\r\n`).
pub fn unix_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// `YYYY-MM-DD`.
pub fn date(timestamp: Timestamp) -> String {
    timestamp.to_string().chars().take(10).collect()
}

/// Unix seconds, never negative (MISP timestamps are unsigned).
pub fn unix_seconds(timestamp: Timestamp) -> u64 {
    u64::try_from(timestamp.as_datetime().timestamp()).unwrap_or(0)
}

/// The form MISP itself prints `first_seen`/`last_seen` in:
/// `2024-01-02T03:04:05.123000+00:00` (microseconds, explicit offset).
pub fn iso_micro(timestamp: Timestamp) -> String {
    let text = timestamp.to_string(); // YYYY-MM-DDTHH:MM:SS.mmmZ
    match text.strip_suffix('Z') {
        Some(millis) => format!("{millis}000+00:00"),
        None => text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn single_line_text_fits_a_utf8mb3_column() {
        assert_eq!(
            single_line("Tin \"Quoted\" Tempest \\ 🌪️ 𝕏\r\nnext", 256),
            "Tin \"Quoted\" Tempest \\ ?\u{FE0F} ?  next"
        );
        assert_eq!(single_line("abcdef", 4), "abc…");
        assert_eq!(single_line("  ab  ", 4), "ab");
    }

    #[test]
    fn timestamps_take_misp_forms() {
        let ts = Timestamp::parse("2024-01-02T03:04:05.678Z").unwrap();
        assert_eq!(date(ts), "2024-01-02");
        assert_eq!(unix_seconds(ts), 1_704_164_645);
        assert_eq!(iso_micro(ts), "2024-01-02T03:04:05.678000+00:00");
        assert_eq!(unix_seconds(Timestamp::parse("1960-01-01").unwrap()), 0);
    }
}
