//! ctiport's own checks of a STIX 2.1 bundle (`ctiport validate`): the rules that bite in
//! practice (reference `stix-taxii.md` §1–§4), independent of Python. The OASIS validator stays
//! the oracle in the test suite; this is for users and for CI on machines without it.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value};
use uuid::Uuid;

use ctiport_model::stix::{is_sco_type, references};

use crate::bundle_reader::read_bundle;
use crate::ids::sco_id;
use crate::pattern::check_pattern;

/// One problem found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The object's id, or `bundle`.
    pub id: String,
    pub message: String,
}

/// Object types whose ids ctiport can recompute, with their ID-contributing properties.
const SCO_ID_PROPERTIES: [(&str, &[&str]); 7] = [
    ("ipv4-addr", &["value"]),
    ("ipv6-addr", &["value"]),
    ("domain-name", &["value"]),
    ("url", &["value"]),
    ("email-addr", &["value"]),
    ("x509-certificate", &["hashes", "serial_number"]),
    ("autonomous-system", &["number"]),
];

/// What the object checks need to know about the whole bundle: which ids it holds, and which
/// versions appear more than once. Built in a first pass so that a bundle can be checked while
/// streaming it: memory grows with the number of ids, not with the size of the objects.
#[derive(Default)]
struct BundleIndex {
    ids: HashSet<Box<str>>,
    /// 64-bit hashes of `id|modified`: collisions are negligible at any realistic size.
    versions: HashSet<u64>,
    repeated_versions: Vec<(String, String)>,
}

impl BundleIndex {
    fn add(&mut self, object: &Value) {
        let id = object
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("(no id)");
        let modified = object
            .get("modified")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (id, modified).hash(&mut hasher);
        if !self.versions.insert(hasher.finish()) {
            self.repeated_versions
                .push((id.to_owned(), modified.to_owned()));
        }
        self.ids.insert(id.into());
    }

    /// Problems of the bundle as a whole: versions that appear more than once.
    fn problems(&self) -> Vec<Problem> {
        self.repeated_versions
            .iter()
            .map(|(id, modified)| Problem {
                id: id.clone(),
                message: format!("the same version (modified {modified:?}) appears more than once"),
            })
            .collect()
    }
}

/// Checks the bundle envelope from its scalar members (`type`, `id`, no `spec_version`).
fn check_envelope(envelope: &Map<String, Value>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut report = |message: String| {
        problems.push(Problem {
            id: "bundle".into(),
            message,
        })
    };
    if envelope.get("type").and_then(Value::as_str) != Some("bundle") {
        report("type is not \"bundle\"".into());
    }
    match envelope.get("id").and_then(Value::as_str) {
        Some(id) if id_problem(id, "bundle").is_none() => {}
        Some(id) => report(format!("bad bundle id '{id}'")),
        None => report("no id".into()),
    }
    if envelope.contains_key("spec_version") {
        report("a 2.1 bundle has no spec_version".into());
    }
    problems
}

/// Checks one object against the rules, resolving its references in `index`.
fn check_object(object: &Value, position: usize, index: &BundleIndex) -> Vec<Problem> {
    let Some(map) = object.as_object() else {
        return vec![Problem {
            id: format!("objects[{position}]"),
            message: "not a JSON object".into(),
        }];
    };
    let id = map.get("id").and_then(Value::as_str).unwrap_or("(no id)");
    object_problems(map, &index.ids)
        .into_iter()
        .map(|message| Problem {
            id: id.to_owned(),
            message,
        })
        .collect()
}

/// Checks one bundle file in two streaming passes: the first indexes the ids, the second checks
/// each object against them. Memory grows with the number of ids, never with the file. An error
/// is a file that cannot be read as a bundle at all.
pub fn check_bundle_file(file: &Path) -> Result<Vec<Problem>, String> {
    check_bundle(|| File::open(file).map(|f| BufReader::with_capacity(256 * 1024, f)))
}

/// [`check_bundle_file`] of the bundle `open` gives a reader on, once for each pass.
fn check_bundle<R: Read>(open: impl Fn() -> std::io::Result<R>) -> Result<Vec<Problem>, String> {
    let unreadable = |e: serde_json::Error| format!("not a readable bundle: {e}");
    let mut index = BundleIndex::default();
    let reader = open().map_err(|e| e.to_string())?;
    let envelope = read_bundle(reader, &mut |object| index.add(&object)).map_err(unreadable)?;
    let mut problems = check_envelope(&envelope);
    let mut position = 0usize;
    let reader = open().map_err(|e| e.to_string())?;
    read_bundle(reader, &mut |object| {
        problems.extend(check_object(&object, position, &index));
        position += 1;
    })
    .map_err(unreadable)?;
    problems.extend(index.problems());
    Ok(problems)
}

fn id_problem(id: &str, expected_type: &str) -> Option<String> {
    let Some((prefix, uuid)) = id.split_once("--") else {
        return Some(format!("id '{id}' is not <type>--<uuid>"));
    };
    if prefix != expected_type {
        return Some(format!(
            "id '{id}' does not start with its type '{expected_type}'"
        ));
    }
    match Uuid::parse_str(uuid) {
        Ok(parsed)
            if uuid.len() == 36
                && (1..=5).contains(&parsed.get_version_num())
                && parsed.get_variant() == uuid::Variant::RFC4122 =>
        {
            None
        }
        _ => Some(format!("id '{id}' does not hold an RFC 4122 UUID")),
    }
}

fn is_ms_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 24
        && text.ends_with('Z')
        && bytes[19] == b'.'
        && bytes[20..bytes.len() - 1].iter().all(u8::is_ascii_digit)
        && crate::timestamp_ok(text)
}

fn object_problems(map: &Map<String, Value>, ids: &HashSet<Box<str>>) -> Vec<String> {
    let mut problems = Vec::new();
    let object_type = map.get("type").and_then(Value::as_str).unwrap_or_default();
    let id = map.get("id").and_then(Value::as_str).unwrap_or_default();
    if object_type.is_empty() {
        problems.push("no type".into());
        return problems;
    }
    problems.extend(id_problem(id, object_type));
    let is_sco = is_sco_type(object_type);
    if !is_sco && map.get("spec_version").and_then(Value::as_str) != Some("2.1") {
        problems.push("spec_version is not \"2.1\"".into());
    }
    for (key, value) in map {
        if !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || !key.starts_with(|c: char| c.is_ascii_lowercase())
        {
            problems.push(format!("property name '{key}' is not lower-case ASCII"));
        }
        if let Some(message) = empty_or_null(key, value) {
            problems.push(message);
        }
    }
    for (key, target) in references(map) {
        if !ids.contains(target) {
            problems.push(format!(
                "{key} points at {target}, which is not in the bundle"
            ));
        }
    }
    let timestamp = |key: &str| map.get(key).and_then(Value::as_str);
    if !is_sco && object_type != "marking-definition" {
        for key in ["created", "modified"] {
            match timestamp(key) {
                Some(t) if is_ms_timestamp(t) => {}
                Some(t) => problems.push(format!("{key} '{t}' is not YYYY-MM-DDTHH:MM:SS.sssZ")),
                None => problems.push(format!("no {key}")),
            }
        }
        if let (Some(created), Some(modified)) = (timestamp("created"), timestamp("modified"))
            && modified < created
        {
            problems.push("modified is earlier than created".into());
        }
    }
    for key in [
        "valid_from",
        "valid_until",
        "first_seen",
        "last_seen",
        "start_time",
        "stop_time",
    ] {
        if let Some(t) = timestamp(key)
            && !crate::timestamp_ok(t)
        {
            problems.push(format!("{key} '{t}' is not an RFC 3339 UTC timestamp"));
        }
    }
    for (earlier, later, strict) in [
        ("valid_from", "valid_until", true),
        ("first_seen", "last_seen", false),
        ("start_time", "stop_time", true),
    ] {
        if let (Some(a), Some(b)) = (timestamp(earlier), timestamp(later))
            && (b < a || (strict && a == b))
        {
            problems.push(format!(
                "{later} must be {} {earlier}",
                if strict {
                    "later than"
                } else {
                    "no earlier than"
                }
            ));
        }
    }
    if let Some(confidence) = map.get("confidence")
        && confidence.as_u64().is_none_or(|c| c > 100)
    {
        problems.push("confidence is not an integer from 0 to 100".into());
    }
    let required: &[&str] = match object_type {
        "indicator" => &["pattern", "pattern_type", "valid_from"],
        "relationship" => &["relationship_type", "source_ref", "target_ref"],
        "threat-actor" | "intrusion-set" | "tool" | "identity" => &["name"],
        "note" => &["content", "object_refs"],
        _ => &[],
    };
    for key in required {
        if !map.contains_key(*key) {
            problems.push(format!("{object_type} requires {key}"));
        }
    }
    if object_type == "location"
        && !(map.contains_key("region")
            || map.contains_key("country")
            || (map.contains_key("latitude") && map.contains_key("longitude")))
    {
        problems.push("a location needs region, country, or latitude and longitude".into());
    }
    if object_type == "relationship"
        && let Some(kind) = map.get("relationship_type").and_then(Value::as_str)
        && (kind.is_empty()
            || !kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        problems.push(format!(
            "relationship_type '{kind}' is not lower-case a-z, 0-9 and '-'"
        ));
    }
    if object_type == "indicator"
        && map.get("pattern_type").and_then(Value::as_str) == Some("stix")
        && let Some(pattern) = map.get("pattern").and_then(Value::as_str)
        && let Err(error) = check_pattern(pattern)
    {
        problems.push(format!("pattern {pattern:?} is invalid {error}"));
    }
    if let Some((_, properties)) = SCO_ID_PROPERTIES.iter().find(|(t, _)| *t == object_type) {
        let id_properties: Map<String, Value> = properties
            .iter()
            .filter_map(|p| map.get(*p).map(|v| ((*p).to_owned(), v.clone())))
            .collect();
        if !id_properties.is_empty() && sco_id(object_type, &id_properties) != id {
            problems.push(format!(
                "SCO id is not the UUIDv5 of its ID-contributing properties (expected {})",
                sco_id(object_type, &id_properties)
            ));
        }
    }
    problems
}

fn empty_or_null(key: &str, value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(format!("{key} is null (omit it instead)")),
        Value::Array(items) if items.is_empty() => {
            Some(format!("{key} is an empty list (omit it instead)"))
        }
        Value::Array(items) => items.iter().find_map(|item| empty_or_null(key, item)),
        Value::Object(inner) => inner
            .iter()
            .find_map(|(k, v)| empty_or_null(&format!("{key}.{k}"), v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [
            {"type": "identity", "spec_version": "2.1", "id": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
             "created": "2024-05-01T00:00:00.000Z", "modified": "2024-05-01T00:00:00.000Z", "name": "P", "identity_class": "organization"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--e2e1a340-4415-4ba8-9671-f7343fbf0836",
             "created_by_ref": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
             "created": "2024-05-01T00:00:00.000Z", "modified": "2024-05-01T00:00:00.000Z",
             "pattern": "[url:value = 'http://evil.example.com/it\\'s']", "pattern_type": "stix",
             "valid_from": "2024-05-01T00:00:00.000Z", "valid_until": "2024-06-01T00:00:00.000Z"},
            {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--28bb3599-77cd-5a82-a950-b5bc3caf07c4", "value": "198.51.100.3"}
        ]})
    }

    fn check(bundle: &Value) -> Vec<Problem> {
        let text = bundle.to_string();
        check_bundle(|| Ok(text.as_bytes())).unwrap()
    }

    fn problems_after(change: impl Fn(&mut Value)) -> Vec<String> {
        let mut bundle = good();
        change(&mut bundle);
        check(&bundle).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn a_good_bundle_has_no_problems() {
        assert_eq!(check(&good()), Vec::new());
    }

    #[test]
    fn finds_the_classic_mistakes() {
        let cases: Vec<(Box<dyn Fn(&mut Value)>, &str)> = vec![
            (
                Box::new(|b| {
                    b["objects"][1]["created_by_ref"] =
                        json!("identity--00000000-0000-4000-8000-000000000000")
                }),
                "not in the bundle",
            ),
            (
                Box::new(|b| b["objects"][1]["modified"] = json!("2024-05-01T00:00:00.00Z")),
                "not YYYY-MM-DDTHH:MM:SS.sssZ",
            ),
            (
                Box::new(|b| b["objects"][1]["pattern"] = json!("[url:value = 'it's']")),
                "pattern",
            ),
            (
                Box::new(|b| b["objects"][1]["valid_until"] = json!("2024-05-01T00:00:00.000Z")),
                "valid_until must be later",
            ),
            (
                Box::new(|b| b["objects"][2]["value"] = json!("198.51.100.4")),
                "UUIDv5",
            ),
            (
                Box::new(|b| b["objects"][0]["labels"] = json!([])),
                "empty list",
            ),
            (
                Box::new(|b| b["objects"][0]["description"] = json!(null)),
                "null",
            ),
            (
                Box::new(|b| b["objects"][0]["confidence"] = json!(101)),
                "confidence",
            ),
            (
                Box::new(|b| b["objects"][0]["id"] = json!("identity--not-a-uuid")),
                "UUID",
            ),
            (
                Box::new(|b| b["objects"][0]["modified"] = json!("2023-05-01T00:00:00.000Z")),
                "earlier than created",
            ),
            (
                Box::new(|b| {
                    let first = b["objects"][0].clone();
                    b["objects"].as_array_mut().unwrap().push(first);
                }),
                "same version",
            ),
            // What stix2-validator refuses although it is a date: year 0, a leap second, and
            // RFC 3339 spellings STIX does not use.
            (
                Box::new(|b| {
                    b["objects"][0]["created"] = json!("0000-05-01T00:00:00.000Z");
                    b["objects"][0]["modified"] = json!("0000-05-01T00:00:00.000Z");
                }),
                "created '0000-05-01T00:00:00.000Z' is not YYYY-MM-DDTHH:MM:SS.sssZ",
            ),
            (
                Box::new(|b| b["objects"][1]["valid_until"] = json!("2016-12-31T23:59:60Z")),
                "valid_until '2016-12-31T23:59:60Z' is not an RFC 3339 UTC timestamp",
            ),
            (
                Box::new(|b| b["objects"][1]["valid_from"] = json!("2024-05-01 00:00:00Z")),
                "valid_from '2024-05-01 00:00:00Z' is not an RFC 3339 UTC timestamp",
            ),
        ];
        for (change, expected) in cases {
            let problems = problems_after(change);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "expected '{expected}' in {problems:?}"
            );
        }
    }
}
