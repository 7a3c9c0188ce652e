//! STIX 2.1 output objects, typed so that invalid shapes cannot be built: optional properties are
//! omitted rather than `null`, empty lists are omitted (both are validator errors), and every
//! timestamp is a [`Timestamp`] with millisecond precision.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::timestamp::Timestamp;

/// Properties shared by every SDO and SRO ctiport emits.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    #[serde(rename = "type")]
    pub object_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by_ref: Option<String>,
    pub created: Timestamp,
    pub modified: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub object_marking_refs: Vec<String>,
}

impl Header {
    /// A first version (`modified == created`) with no optional properties set.
    pub fn new(
        object_type: &'static str,
        id: String,
        created: Timestamp,
        modified: Timestamp,
    ) -> Self {
        Header {
            object_type,
            spec_version: "2.1",
            id,
            created_by_ref: None,
            created,
            modified: modified.max(created),
            revoked: None,
            labels: Vec::new(),
            confidence: None,
            external_references: Vec::new(),
            object_marking_refs: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ExternalReference {
    pub source_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    #[serde(flatten)]
    pub header: Header,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub identity_class: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_information: Option<String>,
}

/// `threat-actor`, `intrusion-set` and `tool` share these properties; `first_seen` is not
/// serialized for tools (the type has none).
#[derive(Clone, Debug, Serialize)]
pub struct ProfileObject {
    #[serde(flatten)]
    pub header: Header,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Location {
    #[serde(flatten)]
    pub header: Header,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Note {
    #[serde(flatten)]
    pub header: Header,
    #[serde(rename = "abstract", skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    pub object_refs: Vec<String>,
}

/// A `report`: here, one MDTI intel profile as a unit (its profile object(s) and tradecraft note).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub header: Header,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub report_types: Vec<&'static str>,
    pub published: Timestamp,
    pub object_refs: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Relationship {
    #[serde(flatten)]
    pub header: Header,
    pub relationship_type: &'static str,
    pub source_ref: String,
    pub target_ref: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Indicator {
    #[serde(flatten)]
    pub header: Header,
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indicator_types: Vec<String>,
    pub pattern: String,
    pub pattern_type: &'static str,
    pub pattern_version: &'static str,
    pub valid_from: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
}

/// A STIX Cyber-observable Object. `id_properties` are exactly the ID-contributing properties
/// (the UUIDv5 name is their canonical JSON); `other_properties` are the rest.
#[derive(Clone, Debug, Serialize)]
pub struct Sco {
    #[serde(rename = "type")]
    pub object_type: &'static str,
    pub spec_version: &'static str,
    pub id: String,
    #[serde(flatten)]
    pub id_properties: Map<String, Value>,
    #[serde(flatten)]
    pub other_properties: Map<String, Value>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum StixObject {
    Identity(Identity),
    Profile(ProfileObject),
    Location(Location),
    Note(Note),
    Report(Report),
    Relationship(Relationship),
    Indicator(Indicator),
    Sco(Sco),
    /// Marking definitions come verbatim from the mapping tables: TLP objects must match the
    /// published ones exactly.
    Marking {
        id: String,
        definition: Value,
    },
}

impl StixObject {
    pub fn id(&self) -> &str {
        match self {
            StixObject::Identity(o) => &o.header.id,
            StixObject::Profile(o) => &o.header.id,
            StixObject::Location(o) => &o.header.id,
            StixObject::Note(o) => &o.header.id,
            StixObject::Report(o) => &o.header.id,
            StixObject::Relationship(o) => &o.header.id,
            StixObject::Indicator(o) => &o.header.id,
            StixObject::Sco(o) => &o.id,
            StixObject::Marking { id, .. } => id,
        }
    }

    fn header(&self) -> Option<&Header> {
        match self {
            StixObject::Identity(o) => Some(&o.header),
            StixObject::Profile(o) => Some(&o.header),
            StixObject::Location(o) => Some(&o.header),
            StixObject::Note(o) => Some(&o.header),
            StixObject::Report(o) => Some(&o.header),
            StixObject::Relationship(o) => Some(&o.header),
            StixObject::Indicator(o) => Some(&o.header),
            StixObject::Sco(_) | StixObject::Marking { .. } => None,
        }
    }

    /// Every id this object references: what a self-contained bundle must also carry.
    pub fn references(&self) -> Vec<String> {
        let mut refs = Vec::new();
        if let Some(header) = self.header() {
            refs.extend(header.created_by_ref.iter().cloned());
            refs.extend(header.object_marking_refs.iter().cloned());
        }
        match self {
            StixObject::Relationship(r) => {
                refs.push(r.source_ref.clone());
                refs.push(r.target_ref.clone());
            }
            StixObject::Note(n) => refs.extend(n.object_refs.iter().cloned()),
            StixObject::Report(r) => refs.extend(r.object_refs.iter().cloned()),
            _ => {}
        }
        refs
    }

    fn serialize_compact(&self) -> String {
        match self {
            StixObject::Marking { definition, .. } => definition.to_string(),
            // Serializing these structs cannot fail: every map key is a string.
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }
}

/// The STIX Cyber-observable types (STIX 2.1 §6).
const SCO_TYPES: [&str; 18] = [
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
];

/// Whether `object_type` is a STIX Cyber-observable: those have no versions (no `created`,
/// `modified` or `revoked`), since an SCO id names one value for ever.
pub fn is_sco_type(object_type: &str) -> bool {
    SCO_TYPES.contains(&object_type)
}

/// The ids an object refers to, with the property naming each (`created_by_ref`,
/// `object_marking_refs`, `source_ref`, …): every `*_ref` string and `*_refs` list item.
pub fn references(map: &Map<String, Value>) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    for (key, value) in map {
        if key.ends_with("_ref") || key.ends_with("_refs") {
            match value {
                Value::String(target) => found.push((key.as_str(), target.as_str())),
                Value::Array(items) => found.extend(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|target| (key.as_str(), target)),
                ),
                _ => {}
            }
        }
    }
    found
}

/// A STIX object serialized once, with what sinks need to place it: its id, its type and the ids
/// it references. Cheap to clone (shared buffers) so that one mapping feeds many sinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedObject {
    pub id: Arc<str>,
    pub object_type: Arc<str>,
    pub json: Arc<str>,
    pub references: Arc<[String]>,
}

impl EncodedObject {
    pub fn encode(object: &StixObject) -> Self {
        let id = object.id();
        let object_type = id.split("--").next().unwrap_or_default();
        EncodedObject {
            id: id.into(),
            object_type: object_type.into(),
            json: object.serialize_compact().into(),
            references: object.references().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omits_empty_and_absent_properties() {
        let t = Timestamp::parse("2024-05-01T00:00:00Z").unwrap_or_else(Timestamp::epoch);
        let object = StixObject::Profile(ProfileObject {
            header: Header::new(
                "tool",
                "tool--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f".into(),
                t,
                t,
            ),
            name: "Cobalt Strike".into(),
            description: None,
            aliases: Vec::new(),
            first_seen: None,
        });
        let encoded = EncodedObject::encode(&object);
        assert_eq!(
            &*encoded.json,
            r#"{"type":"tool","spec_version":"2.1","id":"tool--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2024-05-01T00:00:00.000Z","modified":"2024-05-01T00:00:00.000Z","name":"Cobalt Strike"}"#
        );
        assert_eq!(&*encoded.object_type, "tool");
        assert!(encoded.references.is_empty());
    }

    #[test]
    fn lists_references_of_relationships_and_notes() {
        let t = Timestamp::epoch();
        let mut header = Header::new("relationship", "relationship--1".into(), t, t);
        header.created_by_ref = Some("identity--a".into());
        header.object_marking_refs = vec!["marking-definition--m".into()];
        let relationship = StixObject::Relationship(Relationship {
            header,
            relationship_type: "indicates",
            source_ref: "indicator--s".into(),
            target_ref: "tool--t".into(),
        });
        assert_eq!(
            relationship.references(),
            vec![
                "identity--a",
                "marking-definition--m",
                "indicator--s",
                "tool--t"
            ]
        );
    }

    #[test]
    fn references_of_encoded_json_are_every_ref_and_refs_item() {
        let object = serde_json::json!({
            "type": "note", "created_by_ref": "identity--a", "object_refs": ["tool--t", 3],
            "external_references": [{"source_name": "x"}], "content": "see indicator--i",
        });
        let Value::Object(map) = object else {
            unreachable!()
        };
        assert_eq!(
            references(&map),
            [
                ("created_by_ref", "identity--a"),
                ("object_refs", "tool--t")
            ]
        );
        assert!(is_sco_type("domain-name") && !is_sco_type("indicator"));
    }
}
