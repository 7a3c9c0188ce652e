//! What a MISP instance answers, read leniently: MISP serializes numbers as strings (`"12"`),
//! booleans sometimes as `0`/`1`, and absent values as `null` (reference `misp.md` §1, §3.6).
//! Only the fields the upsert compares are read; everything else is ignored.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"Event": {…}}` as returned by `/events/view`, `/events/add` and `/events/edit`.
#[derive(Debug, Deserialize)]
pub struct EventResponse {
    #[serde(rename = "Event")]
    pub event: StoredEvent,
}

/// An event as the instance holds it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct StoredEvent {
    #[serde(default, deserialize_with = "text")]
    pub id: String,
    #[serde(default, deserialize_with = "text")]
    pub uuid: String,
    #[serde(default, deserialize_with = "text")]
    pub info: String,
    #[serde(default, deserialize_with = "text")]
    pub date: String,
    #[serde(default, deserialize_with = "text")]
    pub threat_level_id: String,
    #[serde(default, deserialize_with = "text")]
    pub analysis: String,
    #[serde(default, deserialize_with = "text")]
    pub distribution: String,
    #[serde(default, deserialize_with = "text")]
    pub extends_uuid: String,
    #[serde(default, deserialize_with = "number")]
    pub timestamp: u64,
    #[serde(default, rename = "Attribute", deserialize_with = "list")]
    pub attributes: Vec<StoredAttribute>,
    #[serde(default, rename = "Tag", deserialize_with = "list")]
    pub tags: Vec<StoredTag>,
    #[serde(default, rename = "EventReport", deserialize_with = "list")]
    pub reports: Vec<StoredReport>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct StoredAttribute {
    #[serde(default, deserialize_with = "text")]
    pub uuid: String,
    #[serde(default, rename = "type", deserialize_with = "text")]
    pub misp_type: String,
    #[serde(default, deserialize_with = "text")]
    pub category: String,
    #[serde(default, deserialize_with = "text")]
    pub value: String,
    #[serde(default, deserialize_with = "flag")]
    pub to_ids: bool,
    #[serde(default, deserialize_with = "text")]
    pub comment: String,
    #[serde(default, deserialize_with = "text")]
    pub distribution: String,
    #[serde(default, deserialize_with = "number")]
    pub timestamp: u64,
    #[serde(default, deserialize_with = "optional_text")]
    pub first_seen: Option<String>,
    #[serde(default, deserialize_with = "optional_text")]
    pub last_seen: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    pub deleted: bool,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct StoredTag {
    #[serde(default, deserialize_with = "text")]
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct StoredReport {
    #[serde(default, deserialize_with = "text")]
    pub uuid: String,
    #[serde(default, deserialize_with = "text")]
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub content: String,
    #[serde(default, deserialize_with = "number")]
    pub timestamp: u64,
    #[serde(default, deserialize_with = "flag")]
    pub deleted: bool,
}

/// The permissions of the key's user that a push depends on (`GET /users/view/me`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Me {
    pub email: String,
    pub organisation: String,
    pub role: String,
    /// Create events.
    pub perm_add: bool,
    /// Edit the events the user created.
    pub perm_modify: bool,
    /// Edit the events of the user's organisation.
    pub perm_modify_org: bool,
    /// Attach tags.
    pub perm_tagger: bool,
    /// Create tags the instance does not know yet.
    pub perm_tag_editor: bool,
    /// A sync user: MISP keeps the `Orgc` it is sent.
    pub perm_sync: bool,
    pub perm_site_admin: bool,
}

impl Me {
    /// Reads `{"User": {…}, "Role": {…}, "Organisation": {…}}`.
    pub fn from_json(value: &Value) -> Option<Me> {
        let role = value.get("Role")?;
        let flag_of = |name: &str| role.get(name).is_some_and(truthy);
        let text_of = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        Some(Me {
            email: text_of(value.get("User").and_then(|u| u.get("email"))),
            organisation: text_of(value.get("Organisation").and_then(|o| o.get("name"))),
            role: text_of(role.get("name")),
            perm_add: flag_of("perm_add"),
            perm_modify: flag_of("perm_modify"),
            perm_modify_org: flag_of("perm_modify_org"),
            perm_tagger: flag_of("perm_tagger"),
            perm_tag_editor: flag_of("perm_tag_editor"),
            perm_sync: flag_of("perm_sync"),
            perm_site_admin: flag_of("perm_site_admin"),
        })
    }
}

/// MISP's spellings of true: `true`, `1`, `"1"`, `"true"`.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_u64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(s.trim(), "1" | "true" | "True"),
        _ => false,
    }
}

fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    })
}

fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| de::Error::custom(format!("not a timestamp: {n}"))),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("not a timestamp: {s:?}"))),
        _ => Ok(0),
    }
}

fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(truthy(&Value::deserialize(deserializer)?))
}

/// A list, or nothing (`null`, or MISP's `{}` for an empty list in some versions).
fn list<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Array(items) => items
            .into_iter()
            .map(|item| serde_json::from_value(item).map_err(de::Error::custom))
            .collect(),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_misp_spellings() {
        let response: EventResponse = serde_json::from_value(json!({"Event": {
            "id": "12", "uuid": "5e8f…", "info": "x", "timestamp": "1714521600",
            "distribution": 0, "extends_uuid": null, "Tag": [{"id": "3", "name": "tlp:amber"}],
            "Attribute": [{"uuid": "a", "type": "ip-dst", "category": "Network activity",
                "value": "198.51.100.7", "to_ids": true, "timestamp": 1714521601,
                "first_seen": null, "last_seen": "2024-01-02T03:04:05.000000+00:00",
                "deleted": "0", "distribution": "5", "comment": ""}],
            "EventReport": {}
        }}))
        .unwrap();
        let event = response.event;
        assert_eq!(event.id, "12");
        assert_eq!(event.timestamp, 1_714_521_600);
        assert_eq!(event.distribution, "0");
        assert_eq!(event.extends_uuid, "");
        assert_eq!(event.tags[0].name, "tlp:amber");
        let a = &event.attributes[0];
        assert_eq!(a.timestamp, 1_714_521_601);
        assert!(a.to_ids && !a.deleted);
        assert_eq!(a.first_seen, None);
        assert!(event.reports.is_empty());
    }

    #[test]
    fn reads_the_role() {
        let me = Me::from_json(&json!({
            "User": {"email": "push@example.org"},
            "Role": {"name": "User", "perm_add": true, "perm_modify": "1", "perm_modify_org": 1,
                     "perm_tagger": true, "perm_tag_editor": false},
            "Organisation": {"name": "Example CTI Org"}}))
        .unwrap();
        assert!(me.perm_add && me.perm_modify && me.perm_modify_org && me.perm_tagger);
        assert!(!me.perm_tag_editor && !me.perm_sync);
        assert_eq!(me.organisation, "Example CTI Org");
        assert_eq!(Me::from_json(&json!({"User": {}})), None);
    }
}
