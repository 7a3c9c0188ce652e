//! Rewrites the version properties of an encoded STIX object (`created`, `modified`, `revoked`)
//! and leaves every other byte of it as it was: property order, nested values and escapes.

use indexmap::IndexMap;
use serde_json::value::RawValue;

use ctiport_model::timestamp::Timestamp;

/// The version properties of an encoded object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub created: Option<Timestamp>,
    pub modified: Option<Timestamp>,
    pub revoked: bool,
}

type Properties = IndexMap<String, Box<RawValue>>;

fn properties(json: &str) -> Result<Properties, String> {
    serde_json::from_str(json).map_err(|e| format!("not a JSON object: {e}"))
}

fn timestamp(properties: &Properties, name: &str) -> Result<Option<Timestamp>, String> {
    let Some(raw) = properties.get(name) else {
        return Ok(None);
    };
    let text: String = serde_json::from_str(raw.get())
        .map_err(|_| format!("'{name}' is not a string: {}", raw.get()))?;
    Timestamp::parse(&text)
        .map(Some)
        .ok_or_else(|| format!("'{name}' is not a timestamp: {text}"))
}

/// Reads the version properties of an encoded object.
pub fn read(json: &str) -> Result<Stamp, String> {
    let properties = properties(json)?;
    Ok(Stamp {
        created: timestamp(&properties, "created")?,
        modified: timestamp(&properties, "modified")?,
        revoked: properties.get("revoked").is_some_and(|v| v.get() == "true"),
    })
}

/// The object with `stamp`'s version properties. Properties the object does not have (an SCO has
/// no `created`) are not added, except `revoked: true`, which goes last.
pub fn apply(json: &str, stamp: &Stamp) -> Result<String, String> {
    let mut properties = properties(json)?;
    let raw = |value: String| RawValue::from_string(value).map_err(|e| e.to_string());
    for (name, value) in [("created", stamp.created), ("modified", stamp.modified)] {
        if let (Some(slot), Some(value)) = (properties.get_mut(name), value) {
            *slot = raw(format!("\"{value}\""))?;
        }
    }
    if stamp.revoked {
        properties.insert("revoked".into(), raw("true".into())?);
    } else {
        properties.shift_remove("revoked");
    }
    serde_json::to_string(&properties).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RELATIONSHIP: &str = r#"{"type":"relationship","spec_version":"2.1","id":"relationship--1","created":"2024-01-01T00:00:00.000Z","modified":"2024-02-01T00:00:00.000Z","relationship_type":"indicates","description":"a \"quoted\" é\n","external_references":[{"source_name":"x","created":"not a version"}]}"#;

    #[test]
    fn rewrites_only_the_version_properties() {
        let stamp = Stamp {
            created: Timestamp::parse("2024-01-01T00:00:00Z"),
            modified: Timestamp::parse("2024-02-01T00:00:00.001Z"),
            revoked: true,
        };
        let out = apply(RELATIONSHIP, &stamp).unwrap();
        assert_eq!(
            out,
            RELATIONSHIP
                .replace("2024-02-01T00:00:00.000Z", "2024-02-01T00:00:00.001Z")
                .replace("}]}", "}],\"revoked\":true}")
        );
        assert_eq!(read(&out).unwrap(), stamp);
    }

    #[test]
    fn an_object_without_dates_keeps_none() {
        let sco = r#"{"type":"domain-name","id":"domain-name--1","value":"a.example"}"#;
        let stamp = Stamp {
            created: Timestamp::parse("2024-01-01T00:00:00Z"),
            modified: Timestamp::parse("2024-01-01T00:00:00Z"),
            revoked: false,
        };
        assert_eq!(apply(sco, &stamp).unwrap(), sco);
        assert_eq!(read(sco).unwrap().modified, None);
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert!(read("[1]").is_err());
        assert!(read(r#"{"modified":"yesterday"}"#).is_err());
    }

    proptest! {
        /// Whatever the other properties hold, applying a stamp and reading it back gives the
        /// stamp, and the other properties come through unchanged and in order.
        #[test]
        fn apply_then_read_round_trips(
            description in ".*",
            millis in 0i64..4_000_000_000_000,
            later in 0i64..1_000_000,
            revoked: bool,
        ) {
            let created = Timestamp::new(chrono::DateTime::from_timestamp_millis(millis).unwrap());
            let modified =
                Timestamp::new(chrono::DateTime::from_timestamp_millis(millis + later).unwrap());
            let object = serde_json::json!({
                "type": "note", "id": "note--1", "created": "2020-01-01T00:00:00.000Z",
                "modified": "2020-01-01T00:00:00.000Z", "content": description,
            });
            let json = serde_json::to_string(&object).unwrap();
            let stamp = Stamp { created: Some(created), modified: Some(modified), revoked };
            let out = apply(&json, &stamp).unwrap();
            prop_assert_eq!(read(&out).unwrap(), stamp);
            let value: serde_json::Value = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(&value["content"], &object["content"]);
            let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
            prop_assert_eq!(keys.len(), 5 + usize::from(revoked));
        }
    }
}
