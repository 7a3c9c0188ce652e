//! Host enrichment facts: `GET hosts/{id}` (a `hostname` or `ipAddress`) and
//! `GET hosts/{id}/reputation` (`hostReputation`), parsed leniently (reference §6.5, §6.6, §7.5:
//! the rule URL may be `relatedDetailsUrl` or the older `link`; entities may be wrapped).

use serde_json::{Map, Value};

use crate::graph::odata_type_name;
use crate::timestamp::Timestamp;

/// What MDTI knows about a host name or IP address.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostFacts {
    /// The host as looked up (normalized host name or canonical IP).
    pub host: String,
    pub registrar: Option<String>,
    pub registrant: Option<String>,
    pub asn: Option<u32>,
    pub as_name: Option<String>,
    pub as_organization: Option<String>,
    pub country: Option<String>,
    pub hosting_provider: Option<String>,
    pub netblock: Option<String>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub reputation: Option<Reputation>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reputation {
    /// `unknown`, `neutral`, `suspicious`, `malicious` (unknown values kept).
    pub classification: String,
    /// 0–100, higher is more likely malicious.
    pub score: u8,
    pub rules: Vec<ReputationRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReputationRule {
    pub name: String,
    pub description: Option<String>,
    pub severity: Option<String>,
}

fn unwrap(value: &Value) -> Option<&Map<String, Value>> {
    let map = value.as_object()?;
    match (map.get("id"), map.get("value")) {
        (None, Some(Value::Object(inner))) => Some(inner),
        _ => Some(map),
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn date(map: &Map<String, Value>, key: &str) -> Option<Timestamp> {
    map.get(key)
        .and_then(Value::as_str)
        .and_then(Timestamp::parse)
}

impl HostFacts {
    /// Facts from a Graph `host` record (either subtype); `None` when it is not an object.
    pub fn from_host_json(host: &str, value: &Value) -> Option<Self> {
        let map = unwrap(value)?;
        let autonomous_system = map.get("autonomousSystem").and_then(Value::as_object);
        let as_text = |key: &str| autonomous_system.and_then(|a| text(a, key));
        let asn = autonomous_system
            .and_then(|a| a.get("number"))
            .and_then(|n| match n {
                Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Value::String(s) => s.trim().trim_start_matches("AS").parse().ok(),
                _ => None,
            });
        // Only the ipAddress subtype carries network facts; a hostname carries WHOIS ones.
        let _subtype = map
            .get("@odata.type")
            .and_then(Value::as_str)
            .map(odata_type_name);
        Some(HostFacts {
            host: host.to_owned(),
            registrar: text(map, "registrar"),
            registrant: text(map, "registrant"),
            asn,
            as_name: as_text("name"),
            as_organization: as_text("organization"),
            country: text(map, "countryOrRegion"),
            hosting_provider: text(map, "hostingProvider"),
            netblock: text(map, "netblock"),
            first_seen: date(map, "firstSeenDateTime"),
            last_seen: date(map, "lastSeenDateTime"),
            reputation: None,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self
            == HostFacts {
                host: self.host.clone(),
                ..HostFacts::default()
            }
    }
}

impl Reputation {
    /// A `hostReputation` record; `None` without a usable score.
    pub fn from_json(value: &Value) -> Option<Self> {
        let map = unwrap(value)?;
        let score = match map.get("score")? {
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        let rules = map
            .get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|rule| {
                        Some(ReputationRule {
                            name: text(rule, "name")?,
                            description: text(rule, "description"),
                            severity: text(rule, "severity"),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Reputation {
            classification: text(map, "classification").unwrap_or_else(|| "unknown".into()),
            score: score.clamp(0.0, 100.0).round() as u8,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_both_host_subtypes_and_reputation() {
        let ip = HostFacts::from_host_json("198.51.100.23", &json!({
            "@odata.type": "#microsoft.graph.security.ipAddress", "id": "198.51.100.23",
            "autonomousSystem": {"name": "EXAMPLE-AS", "number": 64500, "organization": "Example Org", "value": "AS64500"},
            "countryOrRegion": "DE", "hostingProvider": "Example Hosting", "netblock": "198.51.100.0/24",
            "firstSeenDateTime": "2020-01-01T00:00:00Z", "lastSeenDateTime": null
        })).unwrap();
        assert_eq!(
            (ip.asn, ip.country.as_deref(), ip.netblock.as_deref()),
            (Some(64500), Some("DE"), Some("198.51.100.0/24"))
        );
        let name = HostFacts::from_host_json("contoso.com", &json!({"value": {"id": "contoso.com", "registrar": "MarkMonitor Inc.", "registrant": "Microsoft Corporation"}})).unwrap();
        assert_eq!(name.registrar.as_deref(), Some("MarkMonitor Inc."));
        let reputation = Reputation::from_json(&json!({"classification": "malicious", "score": 100, "rules": [
            {"name": "Registrar", "description": "Often abused", "severity": "medium", "relatedDetailsUrl": null},
            {"name": "Old shape", "link": "https://example.invalid"}, {"description": "no name"}
        ]})).unwrap();
        assert_eq!(
            (
                reputation.classification.as_str(),
                reputation.score,
                reputation.rules.len()
            ),
            ("malicious", 100, 2)
        );
        assert_eq!(
            Reputation::from_json(&json!({"classification": "neutral"})),
            None
        );
        assert!(
            HostFacts::from_host_json("x", &json!({"id": "x"}))
                .unwrap()
                .is_empty()
        );
    }
}
