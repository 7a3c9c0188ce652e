//! An indicator value → a STIX `indicator` (one per distinct pattern), its optional SCO, and the
//! relationships to the profile and the SCO.

use std::sync::Arc;

use ctiport_model::graph::IndicatorSource;
use ctiport_model::host::HostFacts;
use ctiport_model::record::ObservableType;
use ctiport_model::stix::{ExternalReference, Indicator, Relationship, Sco, StixObject};
use ctiport_model::timestamp::Timestamp;
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::ids::{relationship_id, sco_id, sdo_id};
use crate::pattern::pattern_for;
use crate::profile::MDTI_SOURCE_NAME;

/// Everything about an indicator object that depends on the occurrence it was first built from.
/// Kept per run so that a later occurrence (another profile) rebuilds the identical object.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorFacts {
    pub created: Timestamp,
    pub modified: Timestamp,
    pub valid_until: Option<Timestamp>,
    pub source: Option<IndicatorSource>,
    /// Host enrichment (`--enrich`); the same for every occurrence of a host, since lookups are
    /// cached per run.
    pub host: Option<Arc<HostFacts>>,
}

/// The dates of one occurrence: `created` (= `valid_from`) is the first sighting, falling back to
/// the last sighting, then to the profile's first activity; `modified` is the last sighting.
pub fn occurrence_dates(
    first_seen: Option<Timestamp>,
    last_seen: Option<Timestamp>,
    profile_first_active: Option<Timestamp>,
) -> Option<(Timestamp, Timestamp)> {
    let created = first_seen.or(last_seen).or(profile_first_active)?;
    Some((created, last_seen.unwrap_or(created).max(created)))
}

impl IndicatorFacts {
    pub fn new(
        observable: ObservableType,
        created: Timestamp,
        modified: Timestamp,
        source: Option<IndicatorSource>,
        host: Option<Arc<HostFacts>>,
        ctx: &Context,
    ) -> Self {
        // Valid for the type's TTL after the last sighting; strictly after valid_from, as STIX requires.
        let valid_until = ctx
            .mappings
            .ttl_days(observable)
            .map(|days| modified.max(created).plus_days(days.max(1)));
        IndicatorFacts {
            created,
            modified,
            valid_until,
            source,
            host,
        }
    }

    /// The host's reputation score when MDTI scored it, else the source's confidence.
    pub fn confidence(&self, ctx: &Context) -> u8 {
        match self.host.as_ref().and_then(|h| h.reputation.as_ref()) {
            Some(reputation) => reputation.score,
            None => {
                ctx.mappings
                    .source(self.source.as_ref().map(IndicatorSource::as_str))
                    .confidence
            }
        }
    }
}

pub fn indicator_id(observable: ObservableType, value: &str) -> String {
    sdo_id("indicator", &pattern_for(observable, value))
}

fn type_label(observable: ObservableType) -> &'static str {
    match observable {
        ObservableType::Domain => "Domain name",
        ObservableType::Ipv4 => "IPv4 address",
        ObservableType::Ipv6 => "IPv6 address",
        ObservableType::Ipv4Cidr => "IPv4 network",
        ObservableType::Ipv6Cidr => "IPv6 network",
        ObservableType::Url => "URL",
        ObservableType::Email => "E-mail address",
        ObservableType::Md5 => "File MD5",
        ObservableType::Sha1 => "File SHA-1",
        ObservableType::Sha256 => "File SHA-256",
        ObservableType::Sha512 => "File SHA-512",
        ObservableType::X509Sha1 => "X.509 certificate SHA-1",
    }
}

pub fn indicator_object(
    observable: ObservableType,
    value: &str,
    facts: &IndicatorFacts,
    ctx: &Context,
) -> StixObject {
    let source = ctx
        .mappings
        .source(facts.source.as_ref().map(IndicatorSource::as_str));
    let mut header = ctx.header(
        "indicator",
        indicator_id(observable, value),
        facts.created,
        facts.modified,
    );
    header.confidence = Some(facts.confidence(ctx));
    header.labels = source.labels.clone();
    if let Some(reputation) = facts.host.as_ref().and_then(|h| h.reputation.as_ref()) {
        header.labels.push(format!(
            "reputation-{}",
            vocabulary_term(&reputation.classification)
        ));
    }
    let source_name = facts
        .source
        .as_ref()
        .map_or("unknown", IndicatorSource::as_str);
    StixObject::Indicator(Indicator {
        header,
        name: value.to_owned(),
        description: describe(observable, source_name, facts.host.as_deref()),
        indicator_types: source.indicator_types.clone(),
        pattern: pattern_for(observable, value),
        pattern_type: "stix",
        pattern_version: "2.1",
        valid_from: facts.created,
        valid_until: facts.valid_until,
    })
}

/// `indicator --indicates--> profile`, carrying the Graph indicator id of this occurrence.
pub fn indicates(
    indicator_ref: &str,
    profile_ref: &str,
    graph_indicator_id: &str,
    created: Timestamp,
    modified: Timestamp,
    ctx: &Context,
) -> StixObject {
    let mut header = ctx.header(
        "relationship",
        relationship_id("indicates", indicator_ref, profile_ref),
        created,
        modified,
    );
    header.external_references = vec![ExternalReference {
        source_name: MDTI_SOURCE_NAME.into(),
        description: Some("intelligenceProfileIndicator id".into()),
        external_id: Some(graph_indicator_id.to_owned()),
    }];
    StixObject::Relationship(Relationship {
        header,
        relationship_type: "indicates",
        source_ref: indicator_ref.to_owned(),
        target_ref: profile_ref.to_owned(),
    })
}

/// The SCO for a value and the `based-on` link from its indicator, when the value is acceptable
/// as an SCO (the validator checks SCO values more strictly than pattern literals); for an IP
/// address with a known ASN, also the `autonomous-system` and `belongs-to`.
pub fn observable_objects(
    observable: ObservableType,
    value: &str,
    indicator: &StixObject,
    host: Option<&HostFacts>,
    ctx: &Context,
) -> Vec<StixObject> {
    let Some((object_type, properties)) = sco_properties(observable, value) else {
        return Vec::new();
    };
    let id = sco_id(object_type, &properties);
    let (created, modified) = match indicator {
        StixObject::Indicator(i) => (i.header.created, i.header.modified),
        _ => (Timestamp::epoch(), Timestamp::epoch()),
    };
    let relate = |relationship_type: &'static str, source: &str, target: &str| {
        ctx.relationship(relationship_type, source, target, created, modified)
    };
    let link = relate("based-on", indicator.id(), &id);
    let mut objects = vec![
        StixObject::Sco(Sco {
            object_type,
            spec_version: "2.1",
            id: id.clone(),
            id_properties: properties,
            other_properties: Map::new(),
        }),
        link,
    ];
    let is_address = matches!(observable, ObservableType::Ipv4 | ObservableType::Ipv6);
    if let (true, Some(host)) = (is_address, host)
        && let Some(number) = host.asn
    {
        let id_properties: Map<String, Value> =
            [("number".to_owned(), json!(number))].into_iter().collect();
        let other_properties: Map<String, Value> = host
            .as_name
            .iter()
            .chain(host.as_organization.iter())
            .take(1)
            .map(|name| ("name".to_owned(), json!(name)))
            .collect();
        let as_id = sco_id("autonomous-system", &id_properties);
        objects.push(relate("belongs-to", &id, &as_id));
        objects.push(StixObject::Sco(Sco {
            object_type: "autonomous-system",
            spec_version: "2.1",
            id: as_id,
            id_properties,
            other_properties,
        }));
    }
    objects
}

/// The indicator's description: what it is, where it comes from, and what enrichment found.
fn describe(observable: ObservableType, source_name: &str, host: Option<&HostFacts>) -> String {
    let mut text = format!(
        "{} reported by Microsoft Defender Threat Intelligence (source: {source_name}).",
        type_label(observable)
    );
    let Some(host) = host else { return text };
    let mut facts = Vec::new();
    if let Some(reputation) = &host.reputation {
        let rules: Vec<&str> = reputation.rules.iter().map(|r| r.name.as_str()).collect();
        let rules = if rules.is_empty() {
            String::new()
        } else {
            format!("; rules: {}", rules.join(", "))
        };
        facts.push(format!(
            "Reputation: {} (score {}){rules}",
            reputation.classification, reputation.score
        ));
    }
    for (label, value) in [
        ("Registrar", &host.registrar),
        ("Registrant", &host.registrant),
        ("Country or region", &host.country),
        ("Hosting provider", &host.hosting_provider),
        ("Netblock", &host.netblock),
    ] {
        if let Some(value) = value {
            facts.push(format!("{label}: {value}"));
        }
    }
    if let Some(asn) = host.asn {
        let name = host
            .as_name
            .as_deref()
            .or(host.as_organization.as_deref())
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        facts.push(format!("ASN: AS{asn}{name}"));
    }
    for fact in facts {
        text.push_str(&format!("\n{}.", fact.trim_end_matches('.')));
    }
    text
}

/// A label term: lower-case, hyphens for anything else.
fn vocabulary_term(text: &str) -> String {
    let term: String = text
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if term.is_empty() {
        "unknown".into()
    } else {
        term
    }
}

fn sco_properties(
    observable: ObservableType,
    value: &str,
) -> Option<(&'static str, Map<String, Value>)> {
    let single =
        |key: &str, v: Value| -> Map<String, Value> { [(key.to_owned(), v)].into_iter().collect() };
    let hashes = |algorithm: &str| single("hashes", json!({ algorithm: value }));
    Some(match observable {
        ObservableType::Domain if sco_domain_ok(value) => {
            ("domain-name", single("value", json!(value)))
        }
        ObservableType::Ipv4 | ObservableType::Ipv4Cidr => {
            ("ipv4-addr", single("value", json!(value)))
        }
        ObservableType::Ipv6 | ObservableType::Ipv6Cidr => {
            ("ipv6-addr", single("value", json!(value)))
        }
        ObservableType::Url if sco_url_ok(value) => ("url", single("value", json!(value))),
        ObservableType::Email if sco_email_ok(value) => {
            ("email-addr", single("value", json!(value)))
        }
        ObservableType::Md5 => ("file", hashes("MD5")),
        ObservableType::Sha1 => ("file", hashes("SHA-1")),
        ObservableType::Sha256 => ("file", hashes("SHA-256")),
        ObservableType::Sha512 => ("file", hashes("SHA-512")),
        ObservableType::X509Sha1 => ("x509-certificate", hashes("SHA-1")),
        _ => return None,
    })
}

/// `idn-hostname`: letters, digits and inner hyphens per label (no `_`, no `*`).
fn sco_domain_ok(value: &str) -> bool {
    value.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric())
            })
    })
}

/// RFC 3986 `URI`: only unreserved, reserved and percent-encoded characters.
fn sco_url_ok(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// The validator's e-mail regex: `^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$`.
fn sco_email_ok(value: &str) -> bool {
    let Some((local, host)) = value.split_once('@') else {
        return false;
    };
    let Some((first, rest)) = host.split_once('.') else {
        return false;
    };
    !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
        && !first.is_empty()
        && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sco_checks_follow_the_validator() {
        assert!(sco_url_ok("http://evil.example.com/it's'path?q=1"));
        assert!(sco_url_ok("http://xn--r8jz45g.jp/%E3%83%91"));
        assert!(!sco_url_ok("http://evil.example.com/a\\b"));
        assert!(!sco_url_ok("http://例え.jp/パス"));
        assert!(!sco_url_ok("http://x/%zz"));
        assert!(sco_domain_ok("münchen.example"));
        assert!(!sco_domain_ok("_dmarc.example.com"));
        assert!(!sco_domain_ok("*.example.com"));
        assert!(sco_email_ok("hr-dept@example-mail.org"));
        assert!(!sco_email_ok("jöhn@example.org"));
    }

    #[test]
    fn dates_fall_back_in_order() {
        let t = |s: &str| Timestamp::parse(s);
        assert_eq!(
            occurrence_dates(t("2024-01-01"), None, None),
            Some((t("2024-01-01").unwrap(), t("2024-01-01").unwrap()))
        );
        assert_eq!(
            occurrence_dates(None, t("2024-02-01"), t("2020-01-01")),
            Some((t("2024-02-01").unwrap(), t("2024-02-01").unwrap()))
        );
        assert_eq!(
            occurrence_dates(None, None, t("2020-01-01")),
            Some((t("2020-01-01").unwrap(), t("2020-01-01").unwrap()))
        );
        assert_eq!(
            occurrence_dates(t("2024-03-01"), t("2024-01-01"), None),
            Some((t("2024-03-01").unwrap(), t("2024-03-01").unwrap()))
        );
        assert_eq!(occurrence_dates(None, None, None), None);
    }
}
