//! The human log format's fields and messages, with every control character escaped.
//!
//! Record ids and values come from the source, so a text log that wrote them raw would let an
//! indicator id holding `\n` start a line of its own (a forged `ERROR …`), and `\r`, NUL or an
//! escape sequence hide or rewrite one. The layout is tracing-subscriber's own (the message, then
//! `name=value` fields); JSON logs escape by construction and keep the default.

use std::fmt;

use tracing::field::Field;
use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// The field formatter of the text log format.
pub fn fields() -> impl for<'writer> FormatFields<'writer> + Send + Sync + 'static {
    debug_fn(write_field).delimited(" ")
}

fn write_field(writer: &mut Writer<'_>, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
    let name = field.name();
    // Metadata of records bridged from the `log` crate, shown in the line's prefix already.
    if name.starts_with("log.") {
        return Ok(());
    }
    if name != "message" {
        write!(writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
    }
    write_escaped(writer, &format!("{value:?}"))
}

/// Writes `text` with every control character (C0, DEL, C1) and the Unicode line and paragraph
/// separators escaped, so that one event stays one line.
fn write_escaped(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => writer.write_str("\\n")?,
            '\r' => writer.write_str("\\r")?,
            '\t' => writer.write_str("\\t")?,
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                write!(writer, "\\u{{{:x}}}", u32::from(c))?;
            }
            c => writer.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    /// What one event looks like in the text format, with these fields or the default ones.
    fn logged(escaping: bool, event: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let writer = move || Shared(sink.clone());
        let builder = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_target(false)
            .without_time();
        if escaping {
            tracing::subscriber::with_default(builder.fmt_fields(fields()).finish(), event);
        } else {
            tracing::subscriber::with_default(builder.finish(), event);
        }
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_id_cannot_forge_a_log_line() {
        let id = "i1\nERROR forged\r\0\u{1b}[2J";
        let line = logged(true, || {
            tracing::warn!(id = %id, reason = %"bad\tdate", "rejected record {id}");
        });
        assert_eq!(
            line,
            " WARN rejected record i1\\nERROR forged\\r\\u{0}\\u{1b}[2J \
             id=i1\\nERROR forged\\r\\u{0}\\u{1b}[2J reason=bad\\tdate\n"
        );
    }

    #[test]
    fn ordinary_events_look_as_they_did() {
        let event = || {
            tracing::info!(profiles = 3, sink = %"stix:out/b.json", id = ?Some("x"), r#type = "a", "export finished: 3 profiles");
        };
        assert_eq!(logged(true, event), logged(false, event));
    }

    proptest! {
        #[test]
        fn one_event_is_one_line_whatever_the_text(text in any::<String>()) {
            let line = logged(true, || tracing::error!(value = %text, "{text}"));
            prop_assert_eq!(line.matches('\n').count(), 1);
            prop_assert!(line.ends_with('\n'));
            let raw = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
            prop_assert!(!line[..line.len() - 1].chars().any(raw), "{:?}", line);
        }
    }
}
