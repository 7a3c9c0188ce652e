//! The Defender for Endpoint Indicator entity (MicrosoftDocs/defender-docs
//! `defender-endpoint/api/ti-indicator.md`) and the checks a submitted one passes
//! (`post-ti-indicator.md`, `import-ti-indicators.md`; error wording from `common-errors.md`).

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::microsoft::stamp::{self, Stamp};

pub const TYPES: [&str; 7] = [
    "FileSha1",
    "FileSha256",
    "FileMd5",
    "CertificateThumbprint",
    "IpAddress",
    "DomainName",
    "Url",
];
pub const ACTIONS: [&str; 7] = [
    "Alert",
    "Warn",
    "Block",
    "Audit",
    "BlockAndRemediate",
    "AlertAndBlock",
    "Allowed",
];
pub const SEVERITIES: [&str; 4] = ["Informational", "Low", "Medium", "High"];

/// A submitted indicator, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub value: String,
    pub kind: String,
    pub action: String,
    pub application: Option<String>,
    pub title: String,
    pub description: String,
    pub recommended_actions: Option<String>,
    pub severity: Option<String>,
    /// As sent, and as an instant.
    pub expiration: Option<(String, Stamp)>,
    pub rbac_group_names: Vec<String>,
    pub generate_alert: Option<bool>,
    pub external_id: Option<String>,
    pub educate_url: Option<String>,
}

impl Submission {
    /// Identity of an indicator in a tenant: a resubmitted value updates it ("Submits or
    /// Updates"). Hashes and domains compare case-insensitively.
    pub fn key(&self) -> (String, String) {
        let value = if self.kind == "Url" {
            self.value.clone()
        } else {
            self.value.to_ascii_lowercase()
        };
        (self.kind.clone(), value)
    }
}

fn is_hex(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An A-label host name: dot-separated LDH labels of 1–63, at most 253 in all, at least two.
pub fn is_domain(value: &str) -> bool {
    let value = value.strip_suffix('.').unwrap_or(value);
    let labels: Vec<&str> = value.split('.').collect();
    value.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

fn is_url(value: &str) -> bool {
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return false;
    }
    // Defender takes both `https://host/path` and a bare `host/path`.
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    match url::Url::parse(&with_scheme) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| {
                    is_domain(h) || h.trim_matches(['[', ']']).parse::<IpAddr>().is_ok()
                })
        }
        Err(_) => false,
    }
}

/// Whether `value` is a valid indicator of `kind`; the documented error message if not.
fn check_value(kind: &str, value: &str) -> Result<(), String> {
    let ok = match kind {
        "FileSha1" | "CertificateThumbprint" => is_hex(value, 40),
        "FileSha256" => is_hex(value, 64),
        "FileMd5" => is_hex(value, 32),
        // "CIDR notation for IPs isn't supported."
        "IpAddress" => value.parse::<IpAddr>().is_ok(),
        "DomainName" => is_domain(value),
        _ => is_url(value),
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        "IpAddress" => format!("IP address {value} is invalid."),
        "DomainName" => format!("Domain name {value} is invalid."),
        "Url" => format!("URL {value} is invalid."),
        _ => format!("Hash value {value} is invalid."),
    })
}

/// Checks one submitted indicator (body parameters are case-sensitive, as the docs warn).
/// `rbac_groups` lists the device groups that exist; empty = any name is taken.
pub fn check(input: &Value, rbac_groups: &[String]) -> Result<Submission, String> {
    let Some(map) = input.as_object() else {
        return Err("Invalid request body.".into());
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("Invalid input {other}.")),
        }
    };
    let required = |name: &str| -> Result<String, String> {
        text(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("Parameter {name} is missing."))
    };
    let value = required("indicatorValue")?;
    let kind = required("indicatorType")?;
    if !TYPES.contains(&kind.as_str()) {
        return Err(format!("Invalid input {kind}."));
    }
    check_value(&kind, value.trim())?;
    let action = required("action")?;
    if !ACTIONS.contains(&action.as_str()) {
        return Err(format!("Invalid input {action}."));
    }
    let title = required("title")?;
    let description = required("description")?;
    let severity = text("severity")?;
    if let Some(s) = &severity
        && !SEVERITIES.contains(&s.as_str())
    {
        return Err(format!("Invalid input {s}."));
    }
    let generate_alert = match map.get("generateAlert") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
        Some(other) => return Err(format!("Invalid input {other}.")),
    };
    // "The GenerateAlert parameter must be set to TRUE when creating an action with Audit."
    if action == "Audit" && generate_alert != Some(true) {
        return Err("Invalid input Audit: generateAlert must be true for the Audit action.".into());
    }
    let expiration = match text("expirationTime")? {
        None => None,
        Some(t) => match stamp::parse(&t, false) {
            Some(at) => Some((t, at)),
            None => return Err(format!("Invalid input {t}.")),
        },
    };
    // The import sample sends a list, the single-submit page a comma-separated string.
    let rbac_group_names: Vec<String> = match map.get("rbacGroupNames") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(other) => return Err(format!("Invalid input {other}.")),
    };
    if let Some(unknown) = rbac_group_names
        .iter()
        .find(|g| !rbac_groups.is_empty() && !rbac_groups.contains(g))
    {
        return Err(format!("Invalid input {unknown}: no such device group."));
    }
    Ok(Submission {
        value: value.trim().to_owned(),
        kind,
        action,
        application: text("application")?,
        title,
        description,
        recommended_actions: text("recommendedActions")?,
        severity,
        expiration,
        rbac_group_names,
        generate_alert,
        external_id: text("externalID")?,
        educate_url: text("educateUrl")?,
    })
}

/// A stored indicator.
#[derive(Clone, Debug)]
pub struct Indicator {
    pub id: u64,
    pub submission: Submission,
    /// Client id of the app that created it (or a user's name for seeded ones).
    pub created_by: String,
    pub source_type: &'static str,
    pub created_at: String,
    pub last_update: String,
    pub last_updated_by: String,
}

impl Indicator {
    pub fn is_expired(&self, now: Stamp) -> bool {
        self.submission
            .expiration
            .as_ref()
            .is_some_and(|(_, at)| *at <= now)
    }

    /// The entity as the list API shows it (ti-indicator.md's JSON representation).
    pub fn to_json(&self) -> Value {
        let s = &self.submission;
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.into(), v);
        };
        put("id", json!(self.id.to_string()));
        put("indicatorValue", json!(s.value));
        put("indicatorType", json!(s.kind));
        put("action", json!(s.action));
        put("application", json!(s.application));
        put("source", json!(self.created_by));
        put("sourceType", json!(self.source_type));
        put("createdBySource", json!(self.created_by));
        put("title", json!(s.title));
        put("creationTimeDateTimeUtc", json!(self.created_at));
        put("createdBy", json!(self.created_by));
        put(
            "expirationTime",
            json!(s.expiration.as_ref().map(|(t, _)| t)),
        );
        put("lastUpdateTime", json!(self.last_update));
        put("lastUpdatedBy", json!(self.last_updated_by));
        put("severity", json!(s.severity));
        put("description", json!(s.description));
        put("recommendedActions", json!(s.recommended_actions));
        put("rbacGroupNames", json!(s.rbac_group_names));
        put("generateAlert", json!(s.generate_alert.unwrap_or(false)));
        put("externalID", json!(s.external_id));
        put("educateUrl", json!(s.educate_url));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        // The import page's first sample indicator.
        json!({"indicatorValue": "220e7d15b011d7fac48f2bd61114db1022197f7f", "indicatorType": "FileSha1",
               "title": "demo", "application": "demo-test", "expirationTime": "2021-12-12T00:00:00Z",
               "action": "Alert", "severity": "Informational", "description": "demo2",
               "recommendedActions": "nothing", "rbacGroupNames": ["group1", "group2"]})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = sample();
        v[key] = value;
        v
    }

    #[test]
    fn documented_sample_is_accepted() {
        let s = check(&sample(), &[]).expect("valid");
        assert_eq!(s.rbac_group_names, ["group1", "group2"]);
        assert_eq!(s.application.as_deref(), Some("demo-test"));
    }

    #[test]
    fn values_per_type() {
        let ip = |v: &str| {
            check(
                &with("indicatorValue", json!(v)).pipe_type("IpAddress"),
                &[],
            )
        };
        assert!(ip("203.0.113.7").is_ok());
        assert!(ip("2001:db8::1").is_ok());
        assert_eq!(
            ip("203.0.113.0/24").err().as_deref(),
            Some("IP address 203.0.113.0/24 is invalid.")
        );
        let dom = |v: &str| {
            check(
                &with("indicatorValue", json!(v)).pipe_type("DomainName"),
                &[],
            )
        };
        assert!(dom("xn--bcher-kva.example").is_ok());
        assert!(dom("bücher.example").is_err());
        assert!(dom("https://a.example").is_err());
        let url = |v: &str| check(&with("indicatorValue", json!(v)).pipe_type("Url"), &[]);
        assert!(url("https://a.example/x?y=1").is_ok());
        assert!(url("a.example/path").is_ok());
        assert!(url("ftp://a.example").is_err());
        assert!(
            check(&with("indicatorValue", json!("abc")), &[])
                .err()
                .is_some_and(|e| e.starts_with("Hash value"))
        );
        let cert = with("indicatorType", json!("CertificateThumbprint"));
        assert!(check(&cert, &[]).is_ok());
    }

    #[test]
    fn required_enums_and_rules() {
        let mut no_title = sample();
        no_title.as_object_mut().map(|o| o.remove("title"));
        assert_eq!(
            check(&no_title, &[]).err().as_deref(),
            Some("Parameter title is missing.")
        );
        // Case-sensitive body parameters: `IndicatorValue` is not `indicatorValue`.
        let mut wrong_case = sample();
        if let Some(o) = wrong_case.as_object_mut() {
            let v = o.remove("indicatorValue").unwrap_or_default();
            o.insert("IndicatorValue".into(), v);
        }
        assert_eq!(
            check(&wrong_case, &[]).err().as_deref(),
            Some("Parameter indicatorValue is missing.")
        );
        assert!(check(&with("action", json!("Quarantine")), &[]).is_err());
        assert!(check(&with("severity", json!("Critical")), &[]).is_err());
        assert!(check(&with("action", json!("Audit")), &[]).is_err());
        let audit = with("action", json!("Audit"));
        let mut audit = audit;
        audit["generateAlert"] = json!(true);
        assert!(check(&audit, &[]).is_ok());
        assert!(check(&with("expirationTime", json!("tomorrow")), &[]).is_err());
        assert!(
            check(&sample(), &["group1".into()]).is_err(),
            "group2 does not exist"
        );
        assert!(check(&with("rbacGroupNames", json!("group1, group2")), &[]).is_ok());
    }

    trait PipeType {
        fn pipe_type(self, kind: &str) -> Value;
    }

    impl PipeType for Value {
        fn pipe_type(mut self, kind: &str) -> Value {
            self["indicatorType"] = json!(kind);
            self
        }
    }
}
