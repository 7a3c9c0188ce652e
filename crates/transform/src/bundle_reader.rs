//! Reads a STIX bundle one object at a time, so that a multi-gigabyte bundle is never held in
//! memory: the `objects` array is walked element by element with a serde visitor, and of the
//! envelope only its scalar members (`type`, `id`, `spec_version`, …) are kept.

use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Calls `on_object` for every element of the bundle's `objects` array (which a bundle with
/// nothing in it leaves out; a lone object there counts as one). Returns the envelope's scalar
/// members. A JSON error stops the walk; the objects before it have been handed on.
pub(crate) fn read_bundle<R: Read>(
    reader: R,
    on_object: &mut dyn FnMut(Value),
) -> Result<Map<String, Value>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let scalars = de::Deserializer::deserialize_map(&mut deserializer, Envelope { on_object })?;
    deserializer.end()?;
    Ok(scalars)
}

/// The bundle's top level: `objects` is handed on, the scalar members are kept.
struct Envelope<'a> {
    on_object: &'a mut dyn FnMut(Value),
}

impl<'de> Visitor<'de> for Envelope<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with an array member \"objects\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut scalars = Map::new();
        let mut saw_objects = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "objects" && !saw_objects {
                saw_objects = true;
                map.next_value_seed(Objects(&mut *self.on_object))?;
            } else if let ScalarOrSkipped::Scalar(value) = map.next_value()? {
                scalars.insert(key, value);
            }
        }
        Ok(scalars)
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

/// The `objects` member, handed on one object at a time.
struct Objects<'a>(&'a mut dyn FnMut(Value));

impl<'de> DeserializeSeed<'de> for Objects<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Objects<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(object) = seq.next_element::<Value>()? {
            (self.0)(object);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        (self.0)(Value::deserialize(de::value::MapAccessDeserializer::new(
            map,
        ))?);
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> (Result<Map<String, Value>, String>, Vec<Value>) {
        let mut objects = Vec::new();
        let result = read_bundle(text.as_bytes(), &mut |object| objects.push(object));
        (result.map_err(|e| e.to_string()), objects)
    }

    #[test]
    fn streams_the_objects_and_keeps_the_scalar_siblings() {
        let (envelope, objects) = read(
            r#"{"type":"bundle","extra":{"a":[1]},"objects":[{"id":"x"},{"id":"y"}],"id":"bundle--1"}"#,
        );
        assert_eq!(objects, vec![json!({"id": "x"}), json!({"id": "y"})]);
        assert_eq!(
            Value::Object(envelope.unwrap()),
            json!({"type": "bundle", "id": "bundle--1"})
        );
    }

    #[test]
    fn objects_may_be_absent_null_or_one_object() {
        let (envelope, objects) = read(r#"{"type":"bundle","id":"bundle--1"}"#);
        assert!(objects.is_empty());
        assert_eq!(envelope.unwrap()["type"], json!("bundle"));
        assert!(read(r#"{"objects":null}"#).1.is_empty());
        assert_eq!(
            read(r#"{"objects":{"id":"x"}}"#).1,
            vec![json!({"id": "x"})]
        );
    }

    #[test]
    fn keeps_what_was_read_before_a_syntax_error() {
        let (result, objects) = read(r#"{"objects":[{"id":"a"},{"id":"b",}]}"#);
        assert!(result.is_err());
        assert_eq!(objects, vec![json!({"id": "a"})]);
        assert!(
            read(r#"{"objects":"x"}"#)
                .0
                .unwrap_err()
                .contains("an array of records")
        );
        assert!(read("[]").0.unwrap_err().contains("an array member"));
    }
}
