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
    read_array_member(reader, "value", on_record).map(|envelope| envelope.count)
}

/// What surrounds the streamed array: its length and the envelope's scalar members (e.g. a
/// bundle's `type` and `id`). Nested arrays and objects beside the array are skipped unread.
#[derive(Debug, Default)]
pub struct Envelope {
    pub count: usize,
    /// Whether the array member was there at all.
    pub has_member: bool,
    pub scalars: serde_json::Map<String, Value>,
}

/// Streams the elements of the array under `member` of a top-level JSON object, one at a time,
/// so that a multi-gigabyte file is never held in memory. A missing member is an error.
pub fn read_array_member<R: Read>(
    reader: R,
    member: &str,
    on_record: &mut dyn FnMut(Value) -> Flow,
) -> Result<Envelope, ReadError> {
    let envelope = read_optional_array_member(reader, member, on_record)?;
    if envelope.has_member {
        Ok(envelope)
    } else {
        Err(ReadError::from(<serde_json::Error as de::Error>::custom(
            format!("no \"{member}\" member in the collection"),
        )))
    }
}

/// [`read_array_member`] for an array that may be absent (a STIX bundle without objects).
pub fn read_optional_array_member<R: Read>(
    reader: R,
    member: &str,
    on_record: &mut dyn FnMut(Value) -> Flow,
) -> Result<Envelope, ReadError> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut envelope = Envelope::default();
    let seed = CollectionSeed {
        member,
        on_record,
        envelope: &mut envelope,
    };
    match seed.deserialize(&mut deserializer) {
        Ok(()) => {
            deserializer.end()?;
            Ok(envelope)
        }
        Err(error) if error.to_string().starts_with(STOPPED) => Ok(envelope),
        Err(error) => Err(error.into()),
    }
}

struct CollectionSeed<'a> {
    member: &'a str,
    on_record: &'a mut dyn FnMut(Value) -> Flow,
    envelope: &'a mut Envelope,
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
                self.envelope.has_member = true;
                map.next_value_seed(ItemsSeed {
                    on_record: &mut *self.on_record,
                    count: &mut self.envelope.count,
                })?;
            } else {
                match map.next_value::<ScalarOrSkipped>()? {
                    ScalarOrSkipped::Scalar(value) => {
                        self.envelope.scalars.insert(key, value);
                    }
                    ScalarOrSkipped::Skipped => {}
                }
            }
        }
        Ok(())
    }
}

/// A sibling member: kept when it is a scalar, skipped without allocation when it is a container.
enum ScalarOrSkipped {
    Scalar(Value),
    Skipped,
}

impl<'de> Deserialize<'de> for ScalarOrSkipped {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = ScalarOrSkipped;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ScalarOrSkipped::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ScalarOrSkipped::Scalar(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ScalarOrSkipped::Scalar(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ScalarOrSkipped::Scalar(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ScalarOrSkipped::Scalar(Value::String(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(ScalarOrSkipped::Scalar(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ScalarOrSkipped::Skipped)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ScalarOrSkipped::Skipped)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
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
            r#"{"@odata.context":"x","@odata.nextLink":"y","value":[{"id":"a"},{"id":"b"}],"@odata.count":2}"#,
        );
        assert_eq!(result, Ok(2));
        assert_eq!(records, vec![json!({"id":"a"}), json!({"id":"b"})]);
    }

    #[test]
    fn streams_any_member_and_keeps_the_scalar_siblings() {
        let mut ids = Vec::new();
        let envelope = read_array_member(
            r#"{"type":"bundle","extra":{"a":[1]},"objects":[{"id":"x"},{"id":"y"}],"id":"bundle--1"}"#.as_bytes(),
            "objects",
            &mut |v| {
                ids.push(v["id"].clone());
                Flow::Continue
            },
        )
        .unwrap();
        assert_eq!(ids, vec![json!("x"), json!("y")]);
        assert_eq!(envelope.count, 2);
        assert_eq!(
            Value::Object(envelope.scalars),
            json!({"type": "bundle", "id": "bundle--1"})
        );
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
    fn an_optional_member_may_be_absent_and_a_stopped_read_still_saw_it() {
        let mut seen = 0;
        let empty = read_optional_array_member(
            br#"{"type":"bundle","id":"bundle--1"}"#.as_slice(),
            "objects",
            &mut |_| {
                seen += 1;
                Flow::Continue
            },
        )
        .unwrap();
        assert!(!empty.has_member && empty.count == 0 && seen == 0);
        assert_eq!(empty.scalars["type"], json!("bundle"));
        let stopped = read_array_member(
            br#"{"objects":[{"id":"a"},{"id":"b"}]}"#.as_slice(),
            "objects",
            &mut |_| Flow::Stop,
        )
        .unwrap();
        assert!(stopped.has_member);
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
