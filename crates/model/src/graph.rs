//! Microsoft Graph Threat Intelligence records (`microsoft.graph.security.*`), parsed leniently.
//!
//! The live API drifts from its documented schema (reference `graph-ti-api.md` §5.3, §9): two
//! spellings of `indicatorSource`, beta `sponsorStates`, single entities wrapped as
//! `{"value":{…}}`, missing or empty `artifact`, `null` dates, mixed timestamp precision, and
//! `@odata.type` with or without `#` and in any case. Parsing goes through `serde_json::Value` so
//! that one odd field gives a precise error for one record instead of failing a whole page.

use std::net::IpAddr;

use serde_json::{Map, Value};
use thiserror::Error;

use crate::timestamp::{Timestamp, Unusable};

/// Why a Graph record could not be turned into a typed record.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("record is not a JSON object")]
    NotAnObject,
    #[error("record has no string `id`")]
    MissingId,
    #[error("`{field}` is not a valid date-time: {value}")]
    BadDate { field: &'static str, value: String },
    /// A date no consumer can hold: the record is rejected like one with a broken date, since
    /// moving the date would misstate when the threat was seen.
    #[error(
        "`{field}` is {value}, which STIX and MISP cannot represent (years 0001 to 9999, seconds 00 to 59)"
    )]
    DateOutOfRange { field: &'static str, value: String },
    #[error("`{field}` has an unexpected JSON type")]
    BadType { field: &'static str },
}

/// `intelligenceProfileKind`; unknown values are kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileKind {
    Actor,
    Tool,
    Other(String),
}

impl ProfileKind {
    fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "actor" => ProfileKind::Actor,
            "tool" => ProfileKind::Tool,
            _ => ProfileKind::Other(text.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ProfileKind::Actor => "actor",
            ProfileKind::Tool => "tool",
            ProfileKind::Other(other) => other,
        }
    }
}

/// `formattedContent`: text, html or markdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormattedContent {
    pub content: String,
    pub format: String,
}

/// `intelligenceProfileCountryOrRegionOfOrigin` (v1.0) or `intelligenceProfileSponsorState` (beta).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountryOrRegion {
    pub code: Option<String>,
    pub label: Option<String>,
}

/// `intelligenceProfile`: a threat actor or tool profile.
#[derive(Clone, Debug, PartialEq)]
pub struct IntelProfile {
    pub id: String,
    pub kind: ProfileKind,
    pub title: Option<String>,
    pub first_active: Option<Timestamp>,
    pub aliases: Vec<String>,
    pub targets: Vec<String>,
    pub countries_or_regions: Vec<CountryOrRegion>,
    pub summary: Option<FormattedContent>,
    pub description: Option<FormattedContent>,
    pub tradecraft: Option<FormattedContent>,
}

/// `indicatorSource`: both documented spellings map to the same variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IndicatorSource {
    Microsoft,
    Osint,
    Public,
    Other(String),
}

impl IndicatorSource {
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "microsoft" | "microsoftdefenderthreatintelligence" => IndicatorSource::Microsoft,
            "osint" | "opensourceintelligence" => IndicatorSource::Osint,
            "public" => IndicatorSource::Public,
            _ => IndicatorSource::Other(text.to_owned()),
        }
    }

    /// The key used in the `sources` mapping table.
    pub fn as_str(&self) -> &str {
        match self {
            IndicatorSource::Microsoft => "microsoft",
            IndicatorSource::Osint => "osint",
            IndicatorSource::Public => "public",
            IndicatorSource::Other(other) => other,
        }
    }
}

/// The inline artifact stub of an indicator (`@odata.type` + `id`, plus `kind`/`value` for
/// unclassified artifacts).
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// The `@odata.type` reduced to its type name, lower-cased: `hostname`, `ipaddress`, …
    pub type_name: String,
    pub id: Option<String>,
    /// `unclassifiedArtifact.kind`.
    pub kind: Option<String>,
    /// `unclassifiedArtifact.value`.
    pub value: Option<String>,
}

impl Artifact {
    /// The host this artifact names, as [`host_key`] normalizes it.
    pub fn host_key(&self) -> Option<String> {
        host_key(&self.type_name, self.id.as_deref()?)
    }
}

/// The host an artifact of type `type_name` (as [`odata_type_name`] gives it) and id names,
/// normalized so that `EVIL.example.com.` and `evil.example.com` share one enrichment lookup;
/// `None` for artifacts that are not a single host (ranges, hashes, …).
pub fn host_key(type_name: &str, id: &str) -> Option<String> {
    let id = id.trim();
    match type_name {
        "hostname" | "ipaddress" | "host" if !id.is_empty() && !id.contains('/') => {
            Some(match id.parse::<IpAddr>() {
                Ok(address) => address.to_string(),
                Err(_) => id.trim_end_matches('.').to_lowercase(),
            })
            .filter(|key| !key.is_empty())
        }
        _ => None,
    }
}

/// `intelligenceProfileIndicator`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileIndicator {
    pub id: String,
    pub source: Option<IndicatorSource>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// `None` when the key is absent, `null`, or an empty object.
    pub artifact: Option<Artifact>,
}

/// Reduces an `@odata.type` to its bare, lower-cased type name:
/// `#microsoft.graph.security.hostName` → `hostname`.
pub fn odata_type_name(odata_type: &str) -> String {
    let bare = odata_type.trim().trim_start_matches('#');
    bare.rsplit('.').next().unwrap_or(bare).to_ascii_lowercase()
}

/// Unwraps the `{"value": {…}}` shape some beta pages use for single entities.
fn unwrap_entity(value: Value) -> Result<Map<String, Value>, ParseError> {
    match value {
        Value::Object(mut map) => {
            if !map.contains_key("id")
                && matches!(map.get("value"), Some(Value::Object(_)))
                && let Some(Value::Object(inner)) = map.remove("value")
            {
                return Ok(inner);
            }
            Ok(map)
        }
        _ => Err(ParseError::NotAnObject),
    }
}

/// Best-effort id of a raw record, for error messages about records that failed to parse.
pub fn raw_record_id(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    let object = match (object.get("id"), object.get("value")) {
        (None, Some(Value::Object(inner))) => inner,
        _ => object,
    };
    match object.get("id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn required_id(map: &Map<String, Value>) -> Result<String, ParseError> {
    match map.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(id.clone()),
        Some(Value::Number(number)) => Ok(number.to_string()),
        _ => Err(ParseError::MissingId),
    }
}

fn optional_string(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, ParseError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(ParseError::BadType { field }),
    }
}

fn optional_date(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Timestamp>, ParseError> {
    match optional_string(map, field)? {
        None => Ok(None),
        // Seen in third-party mocks: the string "null" for a null date.
        Some(text) if text.is_empty() || text.eq_ignore_ascii_case("null") => Ok(None),
        Some(text) => match Timestamp::parse_checked(&text) {
            Ok(timestamp) => Ok(Some(timestamp)),
            Err(Unusable::NotADate) => Err(ParseError::BadDate { field, value: text }),
            Err(Unusable::OutOfRange) => Err(ParseError::DateOutOfRange { field, value: text }),
        },
    }
}

/// A string collection; non-string members and blanks are dropped, a lone string is accepted.
fn string_list(map: &Map<String, Value>, field: &'static str) -> Result<Vec<String>, ParseError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text.clone()]
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        Some(_) => Err(ParseError::BadType { field }),
    }
}

/// `formattedContent`, also accepting a bare string (treated as text).
fn formatted(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<FormattedContent>, ParseError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(FormattedContent {
            content: text.clone(),
            format: "text".into(),
        })),
        Some(Value::Object(inner)) => {
            let content = optional_string(inner, "content")?.unwrap_or_default();
            if content.trim().is_empty() {
                return Ok(None);
            }
            let format = optional_string(inner, "format")?.unwrap_or_else(|| "text".into());
            Ok(Some(FormattedContent { content, format }))
        }
        Some(_) => Err(ParseError::BadType { field }),
    }
}

fn countries(map: &Map<String, Value>) -> Result<Vec<CountryOrRegion>, ParseError> {
    let (field, value) = match (
        map.get("countriesOrRegionsOfOrigin"),
        map.get("sponsorStates"),
    ) {
        (Some(value), _) if !value.is_null() => ("countriesOrRegionsOfOrigin", value),
        (_, Some(value)) => ("sponsorStates", value),
        _ => return Ok(Vec::new()),
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => Ok(items
            .iter()
            .filter_map(|item| match item {
                Value::Object(entry) => Some(CountryOrRegion {
                    code: optional_string(entry, "code")
                        .ok()
                        .flatten()
                        .filter(|c| !c.trim().is_empty()),
                    label: optional_string(entry, "label")
                        .ok()
                        .flatten()
                        .filter(|l| !l.trim().is_empty()),
                }),
                Value::String(label) => Some(CountryOrRegion {
                    code: None,
                    label: Some(label.clone()),
                }),
                _ => None,
            })
            .filter(|entry| entry.code.is_some() || entry.label.is_some())
            .collect()),
        _ => Err(ParseError::BadType { field }),
    }
}

impl IntelProfile {
    /// A profile with only its id, kind and title: what the rest of a record may leave out.
    pub fn titled(id: &str, kind: ProfileKind, title: &str) -> Self {
        IntelProfile {
            id: id.to_owned(),
            kind,
            title: Some(title.to_owned()),
            first_active: None,
            aliases: Vec::new(),
            targets: Vec::new(),
            countries_or_regions: Vec::new(),
            summary: None,
            description: None,
            tradecraft: None,
        }
    }

    pub fn from_json(value: Value) -> Result<Self, ParseError> {
        let map = unwrap_entity(value)?;
        Ok(IntelProfile {
            id: required_id(&map)?,
            kind: ProfileKind::parse(&optional_string(&map, "kind")?.unwrap_or_default()),
            title: optional_string(&map, "title")?.filter(|t| !t.trim().is_empty()),
            first_active: optional_date(&map, "firstActiveDateTime")?,
            aliases: string_list(&map, "aliases")?,
            targets: string_list(&map, "targets")?,
            countries_or_regions: countries(&map)?,
            summary: formatted(&map, "summary")?,
            description: formatted(&map, "description")?,
            tradecraft: formatted(&map, "tradecraft")?,
        })
    }
}

impl Artifact {
    fn from_json(value: &Value) -> Result<Option<Self>, ParseError> {
        let map = match value {
            Value::Null => return Ok(None),
            Value::Object(map) if map.is_empty() => return Ok(None),
            Value::Object(map) => map,
            _ => return Err(ParseError::BadType { field: "artifact" }),
        };
        let type_name = optional_string(map, "@odata.type")?
            .map(|t| odata_type_name(&t))
            .unwrap_or_default();
        Ok(Some(Artifact {
            type_name,
            id: optional_string(map, "id")?.filter(|id| !id.is_empty()),
            kind: optional_string(map, "kind")?,
            value: optional_string(map, "value")?,
        }))
    }
}

impl ProfileIndicator {
    pub fn from_json(value: Value) -> Result<Self, ParseError> {
        let map = unwrap_entity(value)?;
        Ok(ProfileIndicator {
            id: required_id(&map)?,
            source: optional_string(&map, "source")?.map(|s| IndicatorSource::parse(&s)),
            first_seen: optional_date(&map, "firstSeenDateTime")?,
            last_seen: optional_date(&map, "lastSeenDateTime")?,
            artifact: match map.get("artifact") {
                None => None,
                Some(artifact) => Artifact::from_json(artifact)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn host_keys_are_normalized_and_only_for_hosts() {
        assert_eq!(
            host_key("hostname", "EVIL.Example.com."),
            Some("evil.example.com".into())
        );
        assert_eq!(
            host_key("ipaddress", "2001:DB8::1"),
            Some("2001:db8::1".into())
        );
        assert_eq!(host_key("ipaddress", "203.0.113.0/24"), None);
        assert_eq!(host_key("host", " "), None);
        assert_eq!(host_key("sslcertificate", "abc"), None);
        // Nothing is left of these once the root's dot goes: no host to look up.
        assert_eq!(host_key("hostname", "."), None);
        assert_eq!(host_key("hostname", "..."), None);
    }

    #[test]
    fn parses_the_documented_profile() {
        let profile = IntelProfile::from_json(json!({
            "@odata.type": "#microsoft.graph.security.intelligenceProfile",
            "id": "9b01de37bf66d1760954a16dc2b52fed2a7bd4e093dfc8a4905e108e4843da80",
            "kind": "actor",
            "title": "Aqua Blizzard",
            "firstActiveDateTime": "2020-02-24T00:00:00Z",
            "aliases": ["Primitive Bear", "ACTINIUM"],
            "targets": ["Government Agencies & Services: Defense"],
            "countriesOrRegionsOfOrigin": [{"@odata.type": "microsoft.graph.security.intelligenceProfileCountryOrRegionOfOrigin", "label": "Russia", "code": "RU"}],
            "summary": {"@odata.type": "microsoft.graph.security.formattedContent", "content": "Short.", "format": "text"},
            "description": {"content": "## Snapshot\r\nLong.", "format": "markdown"},
            "tradecraft": null,
            "someFutureField": 42
        }))
        .unwrap();
        assert_eq!(profile.kind, ProfileKind::Actor);
        assert_eq!(profile.aliases.len(), 2);
        assert_eq!(profile.countries_or_regions[0].code.as_deref(), Some("RU"));
        assert_eq!(
            profile.description.as_ref().map(|d| d.format.as_str()),
            Some("markdown")
        );
        assert_eq!(profile.tradecraft, None);
        assert_eq!(
            profile.first_active.map(|t| t.to_string()).as_deref(),
            Some("2020-02-24T00:00:00.000Z")
        );
    }

    #[test]
    fn accepts_beta_sponsor_states_and_wrapped_entities_and_unknown_kinds() {
        let profile = IntelProfile::from_json(json!({"value": {
            "id": "actinium", "kind": "unknownFutureValue", "title": "X",
            "sponsorStates": [{"code": "RU", "label": "Russia"}]
        }}))
        .unwrap();
        assert_eq!(profile.id, "actinium");
        assert_eq!(
            profile.kind,
            ProfileKind::Other("unknownFutureValue".into())
        );
        assert_eq!(profile.countries_or_regions.len(), 1);
    }

    #[test]
    fn maps_both_source_spellings() {
        for (raw, expected) in [
            ("microsoft", IndicatorSource::Microsoft),
            (
                "microsoftDefenderThreatIntelligence",
                IndicatorSource::Microsoft,
            ),
            ("osint", IndicatorSource::Osint),
            ("openSourceIntelligence", IndicatorSource::Osint),
            ("public", IndicatorSource::Public),
            (
                "somethingNew",
                IndicatorSource::Other("somethingNew".into()),
            ),
        ] {
            assert_eq!(IndicatorSource::parse(raw), expected);
        }
    }

    #[test]
    fn parses_indicator_stubs_leniently() {
        let indicator = ProfileIndicator::from_json(json!({
            "id": "ff3eecd2-a2be-27c2-8dc0-40d1c0eada55", "source": "microsoft",
            "firstSeenDateTime": "2022-05-02T23:09:20.000Z", "lastSeenDateTime": null,
            "artifact": {"@odata.type": "#Microsoft.Graph.Security.HostName", "id": "fake-malicious.site"}
        }))
        .unwrap();
        let artifact = indicator.artifact.unwrap();
        assert_eq!(artifact.type_name, "hostname");
        assert_eq!(indicator.last_seen, None);

        for artifact in [json!({}), json!(null)] {
            let parsed =
                ProfileIndicator::from_json(json!({"id": "a", "artifact": artifact})).unwrap();
            assert_eq!(parsed.artifact, None);
        }
        assert_eq!(
            ProfileIndicator::from_json(json!({"id": "a"}))
                .unwrap()
                .artifact,
            None
        );
        assert_eq!(
            ProfileIndicator::from_json(json!({"id": "a", "firstSeenDateTime": "soon"})),
            Err(ParseError::BadDate {
                field: "firstSeenDateTime",
                value: "soon".into()
            })
        );
        assert_eq!(
            ProfileIndicator::from_json(json!({"source": "osint"})),
            Err(ParseError::MissingId)
        );
        let unrepresentable = ProfileIndicator::from_json(
            json!({"id": "a", "lastSeenDateTime": "2016-12-31T23:59:60Z"}),
        )
        .unwrap_err();
        assert_eq!(
            unrepresentable.to_string(),
            "`lastSeenDateTime` is 2016-12-31T23:59:60Z, which STIX and MISP cannot represent \
             (years 0001 to 9999, seconds 00 to 59)"
        );
        assert!(matches!(
            IntelProfile::from_json(
                json!({"id": "p", "firstActiveDateTime": "0000-01-01T00:00:00Z"})
            ),
            Err(ParseError::DateOutOfRange {
                field: "firstActiveDateTime",
                ..
            })
        ));
        assert_eq!(
            ProfileIndicator::from_json(json!([1])),
            Err(ParseError::NotAnObject)
        );
    }

    #[test]
    fn reduces_odata_types() {
        assert_eq!(
            odata_type_name("#microsoft.graph.security.ipAddress"),
            "ipaddress"
        );
        assert_eq!(
            odata_type_name("microsoft.graph.security.unclassifiedArtifact"),
            "unclassifiedartifact"
        );
        assert_eq!(odata_type_name("hostname"), "hostname");
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("id".to_string()),
                        Just("artifact".to_string()),
                        Just("value".to_string()),
                        Just("firstSeenDateTime".to_string()),
                        Just("aliases".to_string()),
                        Just("summary".to_string()),
                        Just("countriesOrRegionsOfOrigin".to_string()),
                        ".{0,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn lenient_parsers_never_panic(value in arbitrary_json()) {
            let _ = IntelProfile::from_json(value.clone());
            let _ = ProfileIndicator::from_json(value.clone());
            let _ = raw_record_id(&value);
        }

        #[test]
        fn any_object_with_a_string_id_parses_as_an_indicator_or_names_its_field(id in "[a-zA-Z0-9+/=-]{1,40}", source in ".{0,20}") {
            let parsed = ProfileIndicator::from_json(json!({"id": id.clone(), "source": source}));
            prop_assert_eq!(parsed.map(|i| i.id), Ok(id));
        }
    }
}
