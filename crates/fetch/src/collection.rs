//! Streaming readers for Graph collection files, one record at a time.
//!
//! A `{"value": [...]}` collection is walked element by element with a serde visitor, so a
//! multi-gigabyte indicators file is never held in memory; NDJSON is read line by line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, Read};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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
    #[error("{}", describe_json_error(.0))]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Broken syntax says so; a well-formed document of the wrong shape speaks for itself.
fn describe_json_error(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not valid JSON: {error}")
        }
        _ => error.to_string(),
    }
}

/// How a dump file begins, once a UTF-8 byte order mark is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    /// Nothing at all (or only the byte order mark).
    Empty,
    /// A UTF-16 byte order mark: the file is not UTF-8, and no JSON reader will make sense of it.
    Utf16,
    Text,
}

/// Skips a leading UTF-8 byte order mark, which Windows PowerShell 5.1 writes by default (JSON
/// forbids it, but it carries no data), and says how the rest begins.
pub(crate) fn skip_utf8_bom<R: BufRead>(reader: &mut R) -> std::io::Result<Opening> {
    let start = reader.fill_buf()?;
    if start.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let rest = reader.fill_buf()?;
    Ok(if rest.is_empty() {
        Opening::Empty
    } else if rest.starts_with(b"\xFF\xFE") || rest.starts_with(b"\xFE\xFF") {
        Opening::Utf16
    } else {
        Opening::Text
    })
}

/// Parses one record as serde_json does, except where that would lose what the record says: a
/// number beyond the range of `f64` (which serde_json refuses, even in a field nobody reads) and
/// a numeric record `id` (opaque, so its text is the id: `1e2` must not become `100.0`) are kept
/// as their literal text.
fn parse_record(text: &str) -> Result<Value, serde_json::Error> {
    let parsed = serde_json::from_str::<Value>(text);
    if let Ok(value) = &parsed
        && !has_numeric_id(value)
    {
        return parsed;
    }
    keeping_literals(serde_json::from_str::<&RawValue>(text)?, true)
}

fn has_numeric_id(record: &Value) -> bool {
    let id = |value: &Value| value.get("id").is_some_and(Value::is_number);
    id(record) || record.get("value").is_some_and(id)
}

/// [`parse_record`]'s careful path: one value at a time, from its raw text. `record` is set for
/// a record and for the entity a `{"value": {...}}` wrapper holds.
fn keeping_literals(raw: &RawValue, record: bool) -> Result<Value, serde_json::Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
            let mut map = serde_json::Map::new();
            for (key, member) in members {
                let value = if record && key == "id" && is_number(member) {
                    Value::String(member.get().to_owned())
                } else {
                    keeping_literals(member, record && key == "value")?
                };
                map.insert(key, value);
            }
            Ok(Value::Object(map))
        }
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)?
            .into_iter()
            .map(|item| keeping_literals(item, false))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        _ => Ok(scalar(raw)),
    }
}

/// A JSON scalar; a number beyond `f64` as its literal text (the only scalar serde_json refuses).
fn scalar(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().to_owned()))
}

fn is_number(raw: &RawValue) -> bool {
    raw.get()
        .as_bytes()
        .first()
        .is_some_and(|b| *b == b'-' || b.is_ascii_digit())
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
        // Any, not map: a top-level array then gets an error that says so.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with an array member \"{}\"", self.member)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(format!(
            "top-level value is an array, expected an object with \"{}\"",
            self.member
        )))
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
                // Raw, so that a number serde_json cannot hold does not fail the collection.
                map.next_value::<Box<RawValue>>()?;
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
        // Raw first: a record's numbers are then read by `parse_record`, which keeps what
        // serde_json cannot hold instead of failing the whole collection.
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.deliver(parse_record(raw.get()).map_err(de::Error::custom)?)?;
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
        let parsed = std::str::from_utf8(line)
            .map_err(|e| format!("not valid JSON: not UTF-8: {e}"))
            .and_then(|text| parse_record(text).map_err(|e| format!("not valid JSON: {e}")));
        if on_line((number, parsed)) == Flow::Stop {
            return Ok(number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
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
    fn names_a_top_level_array_and_keeps_numbers_serde_json_cannot_hold() {
        assert!(
            collect(r#"[{"id":"a"}]"#)
                .0
                .unwrap_err()
                .starts_with("top-level value is an array, expected an object with \"value\"")
        );
        let (result, records) =
            collect(r#"{"@odata.count":1e999,"value":[{"id":"a","x":[1e400,{"y":-2e400}]}]}"#);
        assert_eq!(result, Ok(1));
        assert_eq!(
            records,
            vec![json!({"id":"a","x":["1e400",{"y":"-2e400"}]})]
        );
        assert_eq!(
            parse_record(r#"{"id":1e2,"k":1.5,"n":7,"artifact":{"id":8}}"#).unwrap(),
            json!({"id":"1e2","k":1.5,"n":7,"artifact":{"id":8}})
        );
        assert_eq!(
            parse_record(r#"{"value":{"id":123456789012345678901234567890}}"#).unwrap(),
            json!({"value":{"id":"123456789012345678901234567890"}})
        );
        assert!(parse_record(r#"{"id":1e2,"#).is_err());
    }

    #[test]
    fn skips_a_utf8_bom_and_says_how_a_file_begins() {
        let opening = |bytes: &[u8]| {
            let mut reader = bytes;
            let opening = skip_utf8_bom(&mut reader).unwrap();
            (opening, reader.to_vec())
        };
        assert_eq!(opening(b"\xEF\xBB\xBF{}"), (Opening::Text, b"{}".to_vec()));
        assert_eq!(opening(b"{}"), (Opening::Text, b"{}".to_vec()));
        assert_eq!(opening(b"\xEF\xBB\xBF"), (Opening::Empty, Vec::new()));
        assert_eq!(opening(b"").0, Opening::Empty);
        assert_eq!(opening(b"\xFF\xFE{\x00").0, Opening::Utf16);
    }

    /// JSON values as a Graph record may hold them, numbers included.
    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Fractions serde_json reads back exactly (without its float_roundtrip feature, not
            // every f64 is).
            (-1_000_000i64..1_000_000).prop_map(|n| Value::from(n as f64 / 8.0)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("value".to_owned()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// What `parse_record` must return for a serialized `value`: the same value, except that a
    /// numeric record id is its text.
    fn with_text_ids(value: &Value, record: bool) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, member)| {
                        let member = match member {
                            Value::Number(n) if record && key == "id" => {
                                Value::String(n.to_string())
                            }
                            _ => with_text_ids(member, record && key == "value"),
                        };
                        (key.clone(), member)
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| with_text_ids(i, false)).collect())
            }
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn parse_record_reads_what_serde_json_writes(value in arb_json()) {
            let text = value.to_string();
            prop_assert_eq!(parse_record(&text).unwrap(), with_text_ids(&value, true));
        }

        #[test]
        fn parse_record_never_panics(text in ".{0,64}") {
            let _ = parse_record(&text);
        }

        #[test]
        fn a_number_beyond_f64_anywhere_keeps_the_rest(value in arb_json(), exponent in 309u32..5000) {
            let huge = format!("1e{exponent}");
            let text = format!(r#"{{"id":"a","x":[{value},{huge}],"y":{{"z":{huge}}}}}"#);
            prop_assert_eq!(
                parse_record(&text).unwrap(),
                json!({"id": "a", "x": [with_text_ids(&value, false), huge.clone()], "y": {"z": huge}})
            );
        }
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
        // A numeric id is kept as its text (see `parse_record`).
        assert_eq!(lines[0], (1, Ok(json!({"id":"1"}))));
        assert_eq!(lines[1].0, 3);
        assert!(lines[1].1.as_ref().unwrap_err().contains("not valid JSON"));
        assert_eq!(lines[2], (4, Ok(json!({"id":"2"}))));
    }
}
