//! Streaming readers for Graph collection files, one record at a time.
//!
//! A `{"value": [...]}` collection is walked element by element with a serde visitor, so a
//! multi-gigabyte indicators file is never held in memory; NDJSON is read line by line.

use std::fmt;
use std::io::{BufRead, Read};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// What the record callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The consumer has gone away (e.g. the run is shutting down).
    Stop,
}

/// Why a collection could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

const STOPPED: &str = "ctiport: consumer stopped";

/// Calls `on_record` for every element of the `value` array of a Graph collection response (a
/// lone object under `value` counts as one element). Returns how many elements were read; a JSON
/// error stops the walk, and the records already delivered stay delivered.
pub fn read_collection<R: Read>(
    reader: R,
    on_record: &mut dyn FnMut(Value) -> Flow,
) -> Result<usize, ReadError> {
    read_array_member(reader, "value", on_record)
}

/// How far the walk of a collection got: the elements read, and whether the array was there.
#[derive(Debug, Default)]
struct Walked {
    count: usize,
    has_member: bool,
}

/// Streams the elements of the array under `member` of a top-level JSON object, one at a time,
/// so that a multi-gigabyte file is never held in memory; the members beside it are skipped
/// unread. Returns how many elements were read; a missing member is an error.
fn read_array_member<R: Read>(
    reader: R,
    member: &str,
    on_record: &mut dyn FnMut(Value) -> Flow,
) -> Result<usize, ReadError> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut walked = Walked::default();
    let seed = CollectionSeed {
        member,
        on_record,
        walked: &mut walked,
    };
    match seed.deserialize(&mut deserializer) {
        Ok(()) => deserializer.end()?,
        Err(error) if error.to_string().starts_with(STOPPED) => {}
        Err(error) => return Err(error.into()),
    }
    if walked.has_member {
        Ok(walked.count)
    } else {
        Err(ReadError::from(<serde_json::Error as de::Error>::custom(
            format!("no \"{member}\" member in the collection"),
        )))
    }
}

struct CollectionSeed<'a> {
    member: &'a str,
    on_record: &'a mut dyn FnMut(Value) -> Flow,
    walked: &'a mut Walked,
}

impl<'de> DeserializeSeed<'de> for CollectionSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with an array member \"{}\"", self.member)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut saw_member = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.member && !saw_member {
                saw_member = true;
                // Set before the items are read: a consumer may stop in the middle of them.
                self.walked.has_member = true;
                map.next_value_seed(ItemsSeed {
                    on_record: &mut *self.on_record,
                    count: &mut self.walked.count,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ItemsSeed<'a> {
    on_record: &'a mut dyn FnMut(Value) -> Flow,
    count: &'a mut usize,
}

impl ItemsSeed<'_> {
    fn deliver<E: de::Error>(&mut self, record: Value) -> Result<(), E> {
        *self.count += 1;
        match (self.on_record)(record) {
            Flow::Continue => Ok(()),
            Flow::Stop => Err(E::custom(STOPPED)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<Value>()? {
            self.deliver(record)?;
        }
        Ok(())
    }

    /// Some beta responses wrap a single entity as `{"value": {...}}`.
    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let record = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.deliver(record)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One NDJSON line: its 1-based number and either the parsed record or why it is not one.
pub type Line = (usize, Result<Value, String>);

/// Calls `on_line` for every non-blank line of an NDJSON stream (LF or CRLF endings).
pub fn read_ndjson<R: BufRead>(
    mut reader: R,
    on_line: &mut dyn FnMut(Line) -> Flow,
) -> Result<usize, ReadError> {
    let mut buffer = Vec::new();
    let mut number = 0usize;
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer)? == 0 {
            return Ok(number);
        }
        number += 1;
        let line = buffer.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let parsed =
            serde_json::from_slice::<Value>(line).map_err(|e| format!("not valid JSON: {e}"));
        if on_line((number, parsed)) == Flow::Stop {
            return Ok(number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collect(text: &str) -> (Result<usize, String>, Vec<Value>) {
        let mut records = Vec::new();
        let result = read_collection(text.as_bytes(), &mut |v| {
            records.push(v);
            Flow::Continue
        });
        (result.map_err(|e| e.to_string()), records)
    }

    #[test]
    fn walks_the_value_array_and_ignores_odata_members() {
        let (result, records) = collect(
            r#"{"@odata.context":"x","@odata.nextLink":"y","extra":{"a":[1]},"value":[{"id":"a"},{"id":"b"}],"@odata.count":2}"#,
        );
        assert_eq!(result, Ok(2));
        assert_eq!(records, vec![json!({"id":"a"}), json!({"id":"b"})]);
    }

    #[test]
    fn accepts_a_wrapped_single_entity_and_empty_pages() {
        assert_eq!(
            collect(r#"{"value":{"id":"a"}}"#).1,
            vec![json!({"id":"a"})]
        );
        assert_eq!(collect(r#"{"value":[]}"#).0, Ok(0));
    }

    #[test]
    fn keeps_what_was_read_before_a_syntax_error() {
        let (result, records) = collect(r#"{"value":[{"id":"a"},{"id":"b",}]}"#);
        assert!(result.is_err());
        assert_eq!(records, vec![json!({"id":"a"})]);
        assert!(
            collect(r#"{"items":[]}"#)
                .0
                .unwrap_err()
                .contains("no \"value\"")
        );
    }

    #[test]
    fn stops_when_asked() {
        let mut seen = 0;
        let result = read_collection(r#"{"value":[1,2,3]}"#.as_bytes(), &mut |_| {
            seen += 1;
            Flow::Stop
        });
        assert_eq!((result.ok(), seen), (Some(1), 1));
    }

    #[test]
    fn numbers_ndjson_lines_and_reports_bad_ones() {
        let mut lines = Vec::new();
        read_ndjson("{\"id\":1}\r\n\n{bad\n{\"id\":2}".as_bytes(), &mut |line| {
            lines.push(line);
            Flow::Continue
        })
        .unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], (1, Ok(json!({"id":1}))));
        assert_eq!(lines[1].0, 3);
        assert!(lines[1].1.as_ref().unwrap_err().contains("not valid JSON"));
        assert_eq!(lines[2], (4, Ok(json!({"id":2}))));
    }
}
