//! The MISP core format documents ctiport writes: `{"Event": {…}}` with its `Orgc`, `Tag`,
//! `Attribute` and `EventReport` lists, and the feed manifest entry of an event.
//!
//! Field shapes follow what MISP itself serializes (reference `misp.md` §1.1, §1.5): numeric
//! fields as strings, booleans as booleans, lower-case uuids. Serialization order is the order of
//! the fields below, so the same event always gives the same bytes.

use serde::{Deserialize, Serialize};

use super::config::{MispOptions, Organisation};
use super::text::single_line;
use ctiport_model::graph::ProfileKind;

/// MDTI profiles carry no severity: 4 = "Undefined".
pub const THREAT_LEVEL_UNDEFINED: u8 = 4;
/// MDTI intel profiles are finished, published analysis: 2 = "Completed".
pub const ANALYSIS_COMPLETED: u8 = 2;
/// Attributes and reports inherit the event's distribution.
pub const DISTRIBUTION_INHERIT: &str = "5";
/// RFC guidance for `info`: a short title.
const MAX_INFO_CHARS: usize = 256;
/// `tags.name` is a varchar(255).
const MAX_TAG_CHARS: usize = 255;

#[derive(Serialize)]
pub struct EventDocument<'a> {
    #[serde(rename = "Event")]
    pub event: &'a Event,
}

/// `{"Event": {…}}` read back (the feed's previous event file).
#[derive(Deserialize)]
pub struct OwnedEventDocument {
    #[serde(rename = "Event")]
    pub event: Event,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub uuid: String,
    pub info: String,
    pub date: String,
    pub threat_level_id: String,
    pub analysis: String,
    pub distribution: String,
    pub published: bool,
    pub timestamp: String,
    pub publish_timestamp: String,
    pub extends_uuid: String,
    #[serde(rename = "Orgc")]
    pub orgc: OrgRef,
    #[serde(rename = "Tag")]
    pub tags: Vec<Tag>,
    #[serde(rename = "Attribute")]
    pub attributes: Vec<Attribute>,
    #[serde(rename = "EventReport", default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<EventReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRef {
    pub name: String,
    pub uuid: String,
}

impl From<&Organisation> for OrgRef {
    fn from(org: &Organisation) -> Self {
        OrgRef {
            name: single_line(&org.name, 255),
            uuid: org.uuid.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<String>,
    pub local: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub uuid: String,
    #[serde(rename = "type")]
    pub misp_type: String,
    pub category: String,
    pub value: String,
    pub to_ids: bool,
    pub comment: String,
    pub distribution: String,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    pub disable_correlation: bool,
    pub deleted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventReport {
    pub uuid: String,
    pub name: String,
    pub content: String,
    pub distribution: String,
    pub timestamp: String,
    pub deleted: bool,
}

/// One entry of `manifest.json`, in the shape PyMISP's feed generator writes (numbers as numbers).
#[derive(Clone, Debug, Serialize)]
pub struct ManifestEntry {
    #[serde(rename = "Orgc")]
    pub orgc: OrgRef,
    #[serde(rename = "Tag")]
    pub tags: Vec<Tag>,
    pub info: String,
    pub date: String,
    pub analysis: u8,
    pub threat_level_id: u8,
    pub timestamp: u64,
}

impl ManifestEntry {
    pub fn of(event: &Event) -> Self {
        ManifestEntry {
            orgc: event.orgc.clone(),
            tags: event.tags.clone(),
            info: event.info.clone(),
            date: event.date.clone(),
            analysis: ANALYSIS_COMPLETED,
            threat_level_id: THREAT_LEVEL_UNDEFINED,
            timestamp: event.timestamp.parse().unwrap_or(0),
        }
    }
}

/// The `tlp:` taxonomy tag of a TLP level (MISP `tlp` taxonomy, TLP 2.0 names), with the
/// taxonomy's colour.
pub fn tlp_tag(level: &str) -> Tag {
    let level = level.to_ascii_lowercase();
    let colour = match level.as_str() {
        "red" => Some("#FF2B2B"),
        "amber" | "amber+strict" => Some("#FFC000"),
        "green" => Some("#33FF00"),
        "clear" | "white" => Some("#ffffff"),
        _ => None,
    };
    Tag {
        name: format!("tlp:{level}"),
        colour: colour.map(str::to_owned),
        local: false,
    }
}

/// The galaxy tag naming the profile: `misp-galaxy:threat-actor="…"` for actors,
/// `misp-galaxy:tool="…"` for tools. MISP attaches the cluster when one has that value; otherwise
/// it keeps an ordinary tag with that name.
pub fn galaxy_tag(kind: &ProfileKind, title: &str) -> Option<Tag> {
    let galaxy = match kind {
        ProfileKind::Actor => "threat-actor",
        ProfileKind::Tool => "tool",
        ProfileKind::Other(_) => return None,
    };
    let prefix = format!("misp-galaxy:{galaxy}=\"");
    let room = MAX_TAG_CHARS - prefix.chars().count() - 1;
    let value = single_line(title, room);
    Some(Tag {
        name: format!("{prefix}{value}\""),
        colour: None,
        local: false,
    })
}

/// The event title: `Threat actor profile: <title>`, `Tool profile: <title>`; an extension part
/// adds ` (part <k>)`.
pub fn info(kind: &ProfileKind, title: &str, part: u32) -> String {
    let label = match kind {
        ProfileKind::Actor => "Threat actor profile".to_owned(),
        ProfileKind::Tool => "Tool profile".to_owned(),
        ProfileKind::Other(other) => format!("{other} profile"),
    };
    let suffix = if part > 1 {
        format!(" (part {part})")
    } else {
        String::new()
    };
    let room = MAX_INFO_CHARS.saturating_sub(label.chars().count() + 2 + suffix.chars().count());
    format!("{label}: {}{suffix}", single_line(title, room.max(16)))
}

/// The tags every event of a profile carries.
pub fn event_tags(options: &MispOptions, kind: &ProfileKind, title: &str) -> Vec<Tag> {
    let mut tags = vec![tlp_tag(&options.tlp)];
    tags.extend(galaxy_tag(kind, title));
    tags
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;

    #[test]
    fn tags_use_misp_spellings() {
        assert_eq!(tlp_tag("amber+strict").name, "tlp:amber+strict");
        assert_eq!(tlp_tag("clear").colour.as_deref(), Some("#ffffff"));
        assert_eq!(
            galaxy_tag(&ProfileKind::Actor, "APT28").map(|t| t.name),
            Some("misp-galaxy:threat-actor=\"APT28\"".into())
        );
        assert_eq!(
            galaxy_tag(&ProfileKind::Tool, "Mimikatz").map(|t| t.name),
            Some("misp-galaxy:tool=\"Mimikatz\"".into())
        );
        assert_eq!(galaxy_tag(&ProfileKind::Other("x".into()), "y"), None);
        let long = galaxy_tag(&ProfileKind::Actor, &"x".repeat(400)).unwrap();
        assert_eq!(long.name.chars().count(), 255);
        assert!(long.name.ends_with("…\""));
    }

    #[test]
    fn info_is_one_short_line() {
        assert_eq!(
            info(&ProfileKind::Actor, "Aqua Blizzard", 1),
            "Threat actor profile: Aqua Blizzard"
        );
        assert_eq!(
            info(&ProfileKind::Tool, "X\nY 🦊", 3),
            "Tool profile: X Y ? (part 3)"
        );
        assert!(
            info(&ProfileKind::Tool, &"x".repeat(1000), 2)
                .chars()
                .count()
                <= 256
        );
    }
}
