//! Per-object checks of the Sentinel upload API. The page (MicrosoftDocs/azure-docs
//! `articles/sentinel/stix-objects-api.md`) lists the required common properties (`id`, `type`,
//! `created`, `modified`), the indicator's (`pattern`, `pattern_type`, `valid_from`) and the
//! supported types; a failure is reported as in its sample: `Error for Property=id: Required
//! property is missing. Actual value: NULL.` The other rules are STIX 2.1's own.

use serde_json::{Map, Value};

use crate::microsoft::stamp;

/// The types with "enhanced support"; the page lists no others.
pub const SUPPORTED_TYPES: [&str; 5] = [
    "indicator",
    "attack-pattern",
    "threat-actor",
    "identity",
    "relationship",
];

fn actual(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "NULL".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

struct Report<'a> {
    object: &'a Map<String, Value>,
    errors: Vec<String>,
}

impl Report<'_> {
    fn error(&mut self, property: &str, what: &str) {
        let value = actual(self.object.get(property));
        self.errors.push(format!(
            "Error for Property={property}: {what}. Actual value: {value}."
        ));
    }

    /// A required string; returns it when present.
    fn required_str(&mut self, property: &str) -> Option<String> {
        match self.object.get(property) {
            None | Some(Value::Null) => {
                self.error(property, "Required property is missing");
                None
            }
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                self.error(property, "The value must be a non-empty string");
                None
            }
        }
    }

    fn timestamp(&mut self, property: &str, required: bool) -> Option<stamp::Stamp> {
        let text = match self.object.get(property) {
            None | Some(Value::Null) if !required => return None,
            _ => self.required_str(property)?,
        };
        let parsed = stamp::parse(&text, true);
        if parsed.is_none() {
            self.error(
                property,
                "The value must be an RFC 3339 timestamp in UTC (Z)",
            );
        }
        parsed
    }

    fn identifier(&mut self, property: &str, expected_type: Option<&str>) {
        let Some(Value::String(id)) = self.object.get(property) else {
            return;
        };
        let well_formed = id.split_once("--").is_some_and(|(t, uuid)| {
            expected_type.is_none_or(|e| e == t) && !t.is_empty() && is_uuid(uuid)
        });
        if !well_formed {
            let shape = expected_type.unwrap_or("<type>");
            self.error(property, &format!("The value must be '{shape}--<UUID>'"));
        }
    }

    fn optional(&mut self, property: &str, ok: fn(&Value) -> bool, what: &str) {
        if let Some(value) = self.object.get(property)
            && !ok(value)
        {
            self.error(property, what);
        }
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn string_list(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|items| items.iter().all(Value::is_string))
}

/// Every problem of one STIX object, as the API's `errorMessages`; empty when it is accepted.
pub fn check(object: &Value) -> Vec<String> {
    let Some(map) = object.as_object() else {
        return vec![format!(
            "Error for Property=object: The STIX object must be a JSON object. Actual value: {}.",
            actual(Some(object))
        )];
    };
    let mut r = Report {
        object: map,
        errors: Vec::new(),
    };
    let kind = r.required_str("type");
    if let Some(kind) = &kind
        && !SUPPORTED_TYPES.contains(&kind.as_str())
    {
        r.error(
            "type",
            &format!(
                "The type is not supported; supported: {}",
                SUPPORTED_TYPES.join(", ")
            ),
        );
    }
    if r.required_str("id").is_some() {
        r.identifier("id", kind.as_deref());
    }
    r.optional(
        "spec_version",
        |v| matches!(v.as_str(), Some("2.0" | "2.1")),
        "The value must be 2.0 or 2.1",
    );
    let created = r.timestamp("created", true);
    let modified = r.timestamp("modified", true);
    if let (Some(c), Some(m)) = (created, modified)
        && m < c
    {
        r.error("modified", "The value must not be earlier than created");
    }
    r.optional("revoked", Value::is_boolean, "The value must be a boolean");
    r.optional(
        "confidence",
        |v| v.as_u64().is_some_and(|c| c <= 100),
        "The value must be an integer from 0 to 100",
    );
    r.optional("labels", string_list, "The value must be a list of strings");
    r.optional(
        "object_marking_refs",
        |v| {
            v.as_array().is_some_and(|refs| {
                refs.iter().all(|r| {
                    r.as_str()
                        .is_some_and(|s| s.starts_with("marking-definition--"))
                })
            })
        },
        "The value must be a list of marking-definition ids",
    );
    r.optional(
        "external_references",
        |v| {
            v.as_array().is_some_and(|refs| {
                refs.iter()
                    .all(|r| r.get("source_name").is_some_and(Value::is_string))
            })
        },
        "Each external reference must have a source_name",
    );
    if map.contains_key("created_by_ref") {
        r.identifier("created_by_ref", Some("identity"));
    }
    match kind.as_deref() {
        Some("indicator") => {
            r.required_str("pattern");
            r.required_str("pattern_type");
            let from = r.timestamp("valid_from", true);
            let until = r.timestamp("valid_until", false);
            if let (Some(f), Some(u)) = (from, until)
                && u <= f
            {
                r.error("valid_until", "The value must be later than valid_from");
            }
        }
        Some("relationship") => {
            r.required_str("relationship_type");
            for end in ["source_ref", "target_ref"] {
                if r.required_str(end).is_some() {
                    r.identifier(end, None);
                }
            }
        }
        Some("attack-pattern" | "threat-actor" | "identity") => {
            r.required_str("name");
        }
        _ => {}
    }
    r.errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn indicator() -> Value {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--10000003-71a2-445c-ab86-927291df48f8",
            "created": "2010-02-26T18:29:07.778Z", "modified": "2011-02-26T18:29:07.778Z",
            "pattern": "[ipv4-addr:value = '172.29.6.7']", "pattern_type": "stix",
            "valid_from": "2015-02-26T18:29:07.778Z"
        })
    }

    #[test]
    fn the_documented_sample_passes_and_its_error_reads_as_documented() {
        assert_eq!(check(&indicator()), Vec::<String>::new());
        let mut no_id = indicator();
        no_id.as_object_mut().map(|o| o.remove("id"));
        assert_eq!(
            check(&no_id),
            ["Error for Property=id: Required property is missing. Actual value: NULL."]
        );
    }

    #[test]
    fn type_rules() {
        let mut malware = indicator();
        malware["type"] = json!("malware");
        malware["id"] = json!("malware--10000003-71a2-445c-ab86-927291df48f8");
        assert!(
            check(&malware)[0].starts_with("Error for Property=type: The type is not supported")
        );
        let mut bad = indicator();
        bad["valid_until"] = json!("2015-02-26T18:29:07.778Z");
        bad["confidence"] = json!(101);
        bad["id"] = json!("identity--10000003-71a2-445c-ab86-927291df48f8");
        let errors = check(&bad);
        assert_eq!(errors.len(), 3, "{errors:?}");
        let rel = json!({"type": "relationship", "id": "relationship--a2e3efb5-351d-4d46-97a0-6897ee7c77a0",
            "created": "2020-02-29T18:01:28.577Z", "modified": "2020-02-29T18:01:28.577Z",
            "relationship_type": "indicates", "source_ref": "indicator--nope"});
        let errors = check(&rel);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(check(&json!(["x"]))[0].contains("must be a JSON object"));
    }
}
