//! The upsert decisions, as pure functions of the event ctiport built and the copy the instance
//! holds (reference `misp.md` §3.4):
//!
//! * **Edit, never replace.** `/events/edit` merges: attributes are matched by uuid, and one is
//!   updated only when its `timestamp` is newer than the stored one; attributes missing from the
//!   payload are kept. So an edit carries the attributes that are new or changed, each with a
//!   timestamp strictly newer than its stored copy, and every stored attribute the profile no
//!   longer lists, with `"deleted": true` (MISP's soft delete). Without a state store, the stored
//!   copy is the only memory of what was sent before.
//! * **Newer timestamps.** MISP refuses (403) an edit whose event `timestamp` is not newer than
//!   its copy. The edit's timestamp is the built one (the newest source date, as in the feed) or,
//!   when that is not newer, the stored one plus one second; never the clock, so the same input
//!   and the same stored copy give the same payload.
//! * **Nothing to do, nothing sent.** When the stored copy already holds everything as built, no
//!   edit is made: a re-run of the same input changes nothing, not even a timestamp.
//! * **Tags.** Built tags missing from the copy are attached; a `tlp:` tag other than the run's is
//!   detached (TLP is exclusive). Tags someone added in MISP are left alone.
//! * **Verified.** MISP drops an attribute that fails its validation without an error (§1.2), so
//!   the answer to every add and edit is checked: each attribute sent is there with the value
//!   sent, each retracted one is gone or deleted, each tag is attached.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use super::stored::{StoredAttribute, StoredEvent};
use crate::misp::event::{Attribute, Event, EventDocument, EventReport, Tag};
use ctiport_model::timestamp::Timestamp;

/// What an edit of an existing event must carry.
#[derive(Clone, Debug, Default)]
pub struct EditPlan {
    /// The event timestamp of the edit: strictly newer than the stored one.
    pub timestamp: u64,
    /// Whether `info`, `date`, `threat_level_id`, `analysis`, `distribution` or `extends_uuid`
    /// differ from the copy (`None` in a retirement, which sends no header).
    pub header_changed: Option<bool>,
    /// Attributes that are new or differ from their stored copy, with timestamps newer than it.
    pub send: Vec<Attribute>,
    /// Stored attributes the profile no longer lists.
    pub deletions: Vec<Deletion>,
    /// Built tags the copy lacks.
    pub missing_tags: Vec<String>,
    /// Stored `tlp:` tags to detach.
    pub detach_tags: Vec<String>,
    /// The EventReport, when new or changed.
    pub report: Option<EventReport>,
    /// Attributes already stored as built.
    pub unchanged: usize,
}

impl EditPlan {
    /// Whether the copy already holds everything: then no edit is sent.
    pub fn is_noop(&self) -> bool {
        self.header_changed != Some(true)
            && self.send.is_empty()
            && self.deletions.is_empty()
            && self.missing_tags.is_empty()
            && self.detach_tags.is_empty()
            && self.report.is_none()
    }
}

/// A stored attribute to retract: sent back with `"deleted": true` and a newer timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deletion {
    pub uuid: String,
    #[serde(rename = "type")]
    pub misp_type: String,
    pub category: String,
    pub value: String,
    pub timestamp: String,
    pub deleted: bool,
}

fn seconds(text: &str) -> u64 {
    text.parse().unwrap_or(0)
}

/// The same instant in two spellings (`…05.000000+00:00`, `…05Z`), or the same text.
fn same_time(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (Timestamp::parse(a), Timestamp::parse(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        _ => false,
    }
}

/// Whether the stored copy holds the attribute exactly as built (and not deleted).
pub fn same_attribute(built: &Attribute, stored: &StoredAttribute) -> bool {
    !stored.deleted
        && built.misp_type == stored.misp_type
        && built.category == stored.category
        && built.value == stored.value
        && built.to_ids == stored.to_ids
        && built.comment == stored.comment
        && (stored.distribution.is_empty() || built.distribution == stored.distribution)
        && same_time(built.first_seen.as_deref(), stored.first_seen.as_deref())
        && same_time(built.last_seen.as_deref(), stored.last_seen.as_deref())
}

fn same_header(built: &Event, stored: &StoredEvent) -> bool {
    built.info == stored.info
        && built.date == stored.date
        && built.threat_level_id == stored.threat_level_id
        && built.analysis == stored.analysis
        && built.distribution == stored.distribution
        && built.extends_uuid == stored.extends_uuid
}

/// What an edit of `stored` must carry so that the instance holds `built`.
pub fn plan_edit(built: &Event, stored: &StoredEvent) -> EditPlan {
    let by_uuid: HashMap<&str, &StoredAttribute> = stored
        .attributes
        .iter()
        .map(|a| (a.uuid.as_str(), a))
        .collect();
    let mut plan = EditPlan {
        header_changed: Some(!same_header(built, stored)),
        ..EditPlan::default()
    };
    // Attributes: new ones as built; changed ones newer than their copy.
    for attribute in &built.attributes {
        match by_uuid.get(attribute.uuid.as_str()) {
            Some(copy) if same_attribute(attribute, copy) => plan.unchanged += 1,
            Some(copy) => {
                let mut changed = attribute.clone();
                changed.timestamp = seconds(&attribute.timestamp)
                    .max(copy.timestamp + 1)
                    .to_string();
                plan.send.push(changed);
            }
            None => plan.send.push(attribute.clone()),
        }
    }
    let built_uuids: HashSet<&str> = built.attributes.iter().map(|a| a.uuid.as_str()).collect();
    let retracted: Vec<&StoredAttribute> = stored
        .attributes
        .iter()
        .filter(|a| !a.deleted && !built_uuids.contains(a.uuid.as_str()))
        .collect();
    // The report: as built, newer than its copy.
    for report in &built.reports {
        let copy = stored.reports.iter().find(|r| r.uuid == report.uuid);
        let same = copy
            .is_some_and(|c| !c.deleted && c.name == report.name && c.content == report.content);
        if !same {
            let mut changed = report.clone();
            if let Some(copy) = copy {
                changed.timestamp = seconds(&report.timestamp)
                    .max(copy.timestamp + 1)
                    .to_string();
            }
            plan.report = Some(changed);
        }
    }
    // Tags.
    let stored_tags: HashSet<&str> = stored.tags.iter().map(|t| t.name.as_str()).collect();
    let built_tags: HashSet<&str> = built.tags.iter().map(|t| t.name.as_str()).collect();
    plan.missing_tags = built
        .tags
        .iter()
        .filter(|t| !stored_tags.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    plan.detach_tags = stored
        .tags
        .iter()
        .filter(|t| t.name.starts_with("tlp:") && !built_tags.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    // The event timestamp: the built one, newer than the copy and than everything sent.
    let mut timestamp = seconds(&built.timestamp).max(stored.timestamp + 1);
    timestamp = plan
        .send
        .iter()
        .map(|a| seconds(&a.timestamp))
        .chain(plan.report.iter().map(|r| seconds(&r.timestamp)))
        .chain(retracted.iter().map(|a| a.timestamp + 1))
        .fold(timestamp, u64::max);
    plan.timestamp = timestamp;
    plan.deletions = retracted
        .into_iter()
        .map(|a| deletion(a, timestamp))
        .collect();
    plan
}

/// Retracts every attribute of a stored event that no longer exists in the export (an
/// extension event of a profile that shrank, or any event of a profile that vanished from the
/// source); the edit carries nothing else, so the instance keeps the event's header, tags and
/// report.
pub fn plan_retire(stored: &StoredEvent) -> EditPlan {
    let live: Vec<&StoredAttribute> = stored.attributes.iter().filter(|a| !a.deleted).collect();
    let timestamp = live
        .iter()
        .map(|a| a.timestamp + 1)
        .fold(stored.timestamp + 1, u64::max);
    EditPlan {
        timestamp,
        header_changed: None,
        deletions: live.into_iter().map(|a| deletion(a, timestamp)).collect(),
        ..EditPlan::default()
    }
}

fn deletion(stored: &StoredAttribute, timestamp: u64) -> Deletion {
    Deletion {
        uuid: stored.uuid.clone(),
        misp_type: stored.misp_type.clone(),
        category: stored.category.clone(),
        value: stored.value.clone(),
        timestamp: timestamp.to_string(),
        deleted: true,
    }
}

// --- payloads -----------------------------------------------------------------------------------

/// The body of `POST /events/add`: the event exactly as the feed writes it.
pub fn add_body(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EventDocument { event })
}

#[derive(Serialize)]
struct EditDocument<'a> {
    #[serde(rename = "Event")]
    event: EditEvent<'a>,
}

#[derive(Serialize)]
struct EditEvent<'a> {
    uuid: &'a str,
    #[serde(flatten)]
    header: Option<Header<'a>>,
    timestamp: String,
    #[serde(rename = "Tag", skip_serializing_if = "Vec::is_empty")]
    tags: Vec<TagChange<'a>>,
    #[serde(rename = "Attribute", skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<AttributeChange<'a>>,
    #[serde(rename = "EventReport", skip_serializing_if = "Vec::is_empty")]
    reports: Vec<&'a EventReport>,
}

#[derive(Serialize)]
struct Header<'a> {
    info: &'a str,
    date: &'a str,
    threat_level_id: &'a str,
    analysis: &'a str,
    distribution: &'a str,
    published: bool,
    extends_uuid: &'a str,
}

#[derive(Serialize)]
struct TagChange<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    colour: Option<&'a str>,
    local: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AttributeChange<'a> {
    Set(&'a Attribute),
    Delete(&'a Deletion),
}

/// The body of `POST /events/edit/{uuid}` for a plan: the header, every built tag (attaching a
/// tag the event has is a no-op) and the tags to detach, the attributes to set and to retract,
/// the report when it changed. `built` is `None` for a retirement (attributes only).
pub fn edit_body(
    uuid: &str,
    built: Option<&Event>,
    plan: &EditPlan,
) -> Result<Vec<u8>, serde_json::Error> {
    let header = built.map(|e| Header {
        info: &e.info,
        date: &e.date,
        threat_level_id: &e.threat_level_id,
        analysis: &e.analysis,
        distribution: &e.distribution,
        published: false,
        extends_uuid: &e.extends_uuid,
    });
    let mut tags: Vec<TagChange> = built
        .map(|e| e.tags.iter().map(tag_change).collect())
        .unwrap_or_default();
    tags.extend(plan.detach_tags.iter().map(|name| TagChange {
        name,
        colour: None,
        local: false,
        deleted: true,
    }));
    let attributes = plan
        .send
        .iter()
        .map(AttributeChange::Set)
        .chain(plan.deletions.iter().map(AttributeChange::Delete))
        .collect();
    serde_json::to_vec(&EditDocument {
        event: EditEvent {
            uuid,
            header,
            timestamp: plan.timestamp.to_string(),
            tags,
            attributes,
            reports: plan.report.iter().collect(),
        },
    })
}

fn tag_change(tag: &Tag) -> TagChange<'_> {
    TagChange {
        name: &tag.name,
        colour: tag.colour.as_deref(),
        local: tag.local,
        deleted: false,
    }
}

// --- verification -------------------------------------------------------------------------------

/// What the instance must hold after an add or edit.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub attributes: &'a [Attribute],
    pub deletions: &'a [Deletion],
    pub tags: &'a [Tag],
    pub reports: &'a [EventReport],
}

impl<'a> Expected<'a> {
    /// Everything of a built event, plus the retractions of a plan.
    pub fn event(event: &'a Event, deletions: &'a [Deletion]) -> Self {
        Expected {
            attributes: &event.attributes,
            deletions,
            tags: &event.tags,
            reports: &event.reports,
        }
    }
}

/// Something the instance does not hold as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An attribute is absent: MISP dropped it (its validation failed, or its uuid exists in
    /// another event).
    Dropped {
        misp_type: String,
        value: String,
    },
    /// An attribute is stored with another value (MISP rewrote it).
    Rewritten {
        misp_type: String,
        value: String,
        stored: String,
    },
    /// An attribute is still (or again) soft-deleted.
    StillDeleted {
        misp_type: String,
        value: String,
    },
    /// A retracted attribute is still live.
    NotRetracted {
        misp_type: String,
        value: String,
    },
    /// Tags MISP did not attach.
    TagsMissing(Vec<String>),
    ReportMissing(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Dropped { misp_type, value } => write!(
                f,
                "attribute {misp_type} '{value}' was not stored (MISP drops an attribute that \
                 fails its validation, or whose uuid is used by another event)"
            ),
            Problem::Rewritten {
                misp_type,
                value,
                stored,
            } => write!(
                f,
                "attribute {misp_type} '{value}' was stored as '{stored}'"
            ),
            Problem::StillDeleted { misp_type, value } => write!(
                f,
                "attribute {misp_type} '{value}' stayed deleted (MISP kept its newer copy)"
            ),
            Problem::NotRetracted { misp_type, value } => write!(
                f,
                "attribute {misp_type} '{value}' left the profile but MISP did not mark it deleted"
            ),
            Problem::TagsMissing(names) => write!(
                f,
                "tag(s) {} not attached: the MISP user's role needs perm_tagger, and \
                 perm_tag_editor to create tags the instance does not know yet",
                names.join(", ")
            ),
            Problem::ReportMissing(name) => write!(f, "event report '{name}' was not stored"),
        }
    }
}

/// What the instance holds of what was expected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verification {
    /// Attributes stored as built.
    pub present: u64,
    /// Attributes retracted.
    pub retracted: u64,
    pub problems: Vec<Problem>,
}

/// Checks the instance's answer (or copy) against what it must hold. A soft-deleted attribute may
/// be absent from an answer (MISP hides them unless asked), so a retraction is confirmed by
/// either.
pub fn verify(expected: Expected<'_>, answer: &StoredEvent) -> Verification {
    let by_uuid: HashMap<&str, &StoredAttribute> = answer
        .attributes
        .iter()
        .map(|a| (a.uuid.as_str(), a))
        .collect();
    let mut result = Verification::default();
    for attribute in expected.attributes {
        let problem = match by_uuid.get(attribute.uuid.as_str()) {
            None => Some(Problem::Dropped {
                misp_type: attribute.misp_type.to_owned(),
                value: attribute.value.clone(),
            }),
            Some(copy) if copy.deleted => Some(Problem::StillDeleted {
                misp_type: attribute.misp_type.to_owned(),
                value: attribute.value.clone(),
            }),
            Some(copy) if copy.value != attribute.value => Some(Problem::Rewritten {
                misp_type: attribute.misp_type.to_owned(),
                value: attribute.value.clone(),
                stored: copy.value.clone(),
            }),
            Some(_) => None,
        };
        match problem {
            Some(problem) => result.problems.push(problem),
            None => result.present += 1,
        }
    }
    for deletion in expected.deletions {
        match by_uuid.get(deletion.uuid.as_str()) {
            Some(copy) if !copy.deleted => result.problems.push(Problem::NotRetracted {
                misp_type: deletion.misp_type.clone(),
                value: deletion.value.clone(),
            }),
            _ => result.retracted += 1,
        }
    }
    let attached: HashSet<&str> = answer.tags.iter().map(|t| t.name.as_str()).collect();
    let missing: Vec<String> = expected
        .tags
        .iter()
        .filter(|t| !attached.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    if !missing.is_empty() {
        result.problems.push(Problem::TagsMissing(missing));
    }
    for report in expected.reports {
        let stored = answer
            .reports
            .iter()
            .any(|r| r.uuid == report.uuid && !r.deleted);
        if !stored {
            result
                .problems
                .push(Problem::ReportMissing(report.name.clone()));
        }
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::misp::rest::stored::{StoredReport, StoredTag};
    use proptest::prelude::*;
    use serde_json::Value;

    const TYPES: [&str; 3] = ["ip-dst", "domain", "url"];

    fn attribute(n: u8, kind: usize, timestamp: u64, comment: &str) -> Attribute {
        let number = u64::from(n) + 1000 * kind as u64;
        let misp_type = TYPES[kind % TYPES.len()];
        fixtures::attribute(
            number,
            misp_type,
            &format!("v{n}.example"),
            timestamp,
            comment,
        )
    }

    fn event(attributes: Vec<Attribute>, timestamp: u64, report: &str, tlp: &str) -> Event {
        fixtures::event(attributes, timestamp, Some(report), tlp)
    }

    fn stored_attribute(a: &Attribute) -> StoredAttribute {
        StoredAttribute {
            uuid: a.uuid.clone(),
            misp_type: a.misp_type.clone(),
            category: a.category.clone(),
            value: a.value.clone(),
            to_ids: a.to_ids,
            comment: a.comment.clone(),
            distribution: a.distribution.clone(),
            timestamp: seconds(&a.timestamp),
            first_seen: a.first_seen.clone(),
            last_seen: a.last_seen.clone(),
            deleted: a.deleted,
        }
    }

    /// What MISP holds after adding `event` (reference §3.4: timestamps saved as given).
    fn added(event: &Event) -> StoredEvent {
        StoredEvent {
            id: "1".into(),
            uuid: event.uuid.clone(),
            info: event.info.clone(),
            date: event.date.clone(),
            threat_level_id: event.threat_level_id.clone(),
            analysis: event.analysis.clone(),
            distribution: event.distribution.clone(),
            extends_uuid: event.extends_uuid.clone(),
            timestamp: seconds(&event.timestamp),
            attributes: event.attributes.iter().map(stored_attribute).collect(),
            tags: event
                .tags
                .iter()
                .map(|t| StoredTag {
                    name: t.name.clone(),
                })
                .collect(),
            reports: event
                .reports
                .iter()
                .map(|r| StoredReport {
                    uuid: r.uuid.clone(),
                    name: r.name.clone(),
                    content: r.content.clone(),
                    timestamp: seconds(&r.timestamp),
                    deleted: false,
                })
                .collect(),
        }
    }

    /// MISP's `_edit` merge (reference §3.4) applied to an edit body: refused when the event
    /// timestamp is not newer; attributes and reports matched by uuid and updated only when
    /// newer; nothing removed implicitly; tags attached, or detached when `deleted`.
    fn misp_edit(stored: &StoredEvent, body: &[u8]) -> Result<StoredEvent, String> {
        let body: Value = serde_json::from_slice(body).unwrap();
        let event = &body["Event"];
        let timestamp = seconds(event["timestamp"].as_str().unwrap());
        if timestamp <= stored.timestamp {
            return Err("Event in the request not newer than the local copy.".into());
        }
        let mut next = stored.clone();
        next.timestamp = timestamp;
        for field in [
            "info",
            "date",
            "threat_level_id",
            "analysis",
            "distribution",
        ] {
            if let Some(value) = event[field].as_str() {
                let slot = match field {
                    "info" => &mut next.info,
                    "date" => &mut next.date,
                    "threat_level_id" => &mut next.threat_level_id,
                    "analysis" => &mut next.analysis,
                    _ => &mut next.distribution,
                };
                *slot = value.to_owned();
            }
        }
        for a in event["Attribute"].as_array().cloned().unwrap_or_default() {
            let incoming: StoredAttribute = serde_json::from_value(a).unwrap();
            match next.attributes.iter_mut().find(|s| s.uuid == incoming.uuid) {
                Some(s) if incoming.timestamp > s.timestamp => *s = incoming,
                Some(_) => {}
                None => next.attributes.push(incoming),
            }
        }
        for r in event["EventReport"].as_array().cloned().unwrap_or_default() {
            let incoming: StoredReport = serde_json::from_value(r).unwrap();
            match next.reports.iter_mut().find(|s| s.uuid == incoming.uuid) {
                Some(s) if incoming.timestamp > s.timestamp => *s = incoming,
                Some(_) => {}
                None => next.reports.push(incoming),
            }
        }
        for t in event["Tag"].as_array().cloned().unwrap_or_default() {
            let name = t["name"].as_str().unwrap().to_owned();
            if t["deleted"].as_bool() == Some(true) {
                next.tags.retain(|s| s.name != name);
            } else if !next.tags.iter().any(|s| s.name == name) {
                next.tags.push(StoredTag { name });
            }
        }
        Ok(next)
    }

    #[test]
    fn an_unchanged_event_needs_no_edit() {
        let built = event(
            vec![attribute(1, 0, 100, "c"), attribute(2, 1, 90, "c")],
            100,
            "r",
            "amber",
        );
        let plan = plan_edit(&built, &added(&built));
        assert!(plan.is_noop(), "{plan:?}");
        assert_eq!(plan.unchanged, 2);
        let v = verify(Expected::event(&built, &[]), &added(&built));
        assert_eq!((v.present, v.problems.len()), (2, 0));
    }

    #[test]
    fn a_changed_dump_retracts_adds_and_bumps_timestamps() {
        let before = event(
            vec![attribute(1, 0, 100, "c"), attribute(2, 1, 90, "c")],
            100,
            "old",
            "amber",
        );
        let stored = added(&before);
        // Indicator 2 left, 3 arrived (older sighting), the report changed, no date moved.
        let after = event(
            vec![attribute(1, 0, 100, "c"), attribute(3, 2, 50, "c")],
            100,
            "new",
            "amber",
        );
        let plan = plan_edit(&after, &stored);
        assert!(!plan.is_noop());
        assert_eq!(plan.timestamp, 101);
        assert_eq!(plan.send.len(), 1);
        assert_eq!(
            plan.send[0].timestamp, "50",
            "a new attribute keeps its timestamp"
        );
        assert_eq!(plan.deletions.len(), 1);
        assert_eq!(plan.deletions[0].value, "v2.example");
        assert_eq!(plan.deletions[0].timestamp, "101");
        assert_eq!(
            plan.report.as_ref().map(|r| r.timestamp.as_str()),
            Some("101")
        );
        let next = misp_edit(
            &stored,
            &edit_body(&after.uuid, Some(&after), &plan).unwrap(),
        )
        .unwrap();
        let v = verify(Expected::event(&after, &plan.deletions), &next);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!((v.present, v.retracted), (2, 1));
        assert!(plan_edit(&after, &next).is_noop());
    }

    #[test]
    fn a_changed_attribute_is_sent_newer_than_its_copy() {
        let before = event(vec![attribute(1, 0, 100, "old comment")], 100, "r", "amber");
        let after = event(vec![attribute(1, 0, 100, "new comment")], 100, "r", "green");
        let stored = added(&before);
        let plan = plan_edit(&after, &stored);
        assert_eq!(plan.send[0].timestamp, "101");
        assert_eq!(plan.missing_tags, ["tlp:green"]);
        assert_eq!(plan.detach_tags, ["tlp:amber"]);
        let body: Value =
            serde_json::from_slice(&edit_body(&after.uuid, Some(&after), &plan).unwrap()).unwrap();
        assert_eq!(
            body["Event"]["Tag"][1],
            serde_json::json!({"name": "tlp:amber", "local": false, "deleted": true})
        );
        let next = misp_edit(&stored, &serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(next.attributes[0].comment, "new comment");
        assert_eq!(next.tags.len(), 1);
        assert!(plan_edit(&after, &next).is_noop());
    }

    #[test]
    fn verification_names_what_misp_dropped_or_rewrote() {
        let built = event(
            vec![attribute(1, 0, 100, "c"), attribute(2, 1, 90, "c")],
            100,
            "r",
            "amber",
        );
        let mut answer = added(&built);
        answer.attributes.remove(0);
        answer.attributes[0].value = "V2.example".into();
        answer.tags.clear();
        let v = verify(Expected::event(&built, &[]), &answer);
        assert_eq!(v.present, 0);
        let text: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert!(
            text[0].contains("ip-dst 'v1.example' was not stored"),
            "{text:?}"
        );
        assert!(text[1].contains("stored as 'V2.example'"), "{text:?}");
        assert!(text[2].contains("perm_tag_editor"), "{text:?}");
    }

    #[test]
    fn the_same_instant_in_two_spellings_is_no_change() {
        assert!(same_time(
            Some("2024-01-02T03:04:05.000000+00:00"),
            Some("2024-01-02T03:04:05Z")
        ));
        assert!(!same_time(Some("2024-01-02T03:04:05Z"), None));
        assert!(!same_time(
            Some("2024-01-02T03:04:05Z"),
            Some("2024-01-02T03:04:06Z")
        ));
    }

    #[test]
    fn retiring_an_extension_event_retracts_everything() {
        let built = event(
            vec![attribute(1, 0, 100, "c"), attribute(2, 1, 300, "c")],
            100,
            "r",
            "amber",
        );
        let stored = added(&built);
        let plan = plan_retire(&stored);
        assert_eq!(plan.timestamp, 301);
        assert_eq!(plan.deletions.len(), 2);
        let body = edit_body(&built.uuid, None, &plan).unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert!(json["Event"].get("info").is_none() && json["Event"].get("Tag").is_none());
        let next = misp_edit(&stored, &body).unwrap();
        assert!(next.attributes.iter().all(|a| a.deleted));
        assert!(plan_retire(&next).deletions.is_empty());
    }

    /// A built attribute set: up to 12 attributes picked from 24 (value, type) slots, with a
    /// comment and timestamp each.
    fn attributes() -> impl Strategy<Value = Vec<Attribute>> {
        proptest::collection::btree_map(0u8..24, (0u64..500, 0u8..3), 0..12).prop_map(|picked| {
            picked
                .into_iter()
                .map(|(slot, (ts, comment))| {
                    attribute(slot % 8, usize::from(slot / 8), ts, &format!("c{comment}"))
                })
                .collect()
        })
    }

    proptest! {
        /// Whatever the copy holds (an earlier export, edited since, with deleted attributes and
        /// another TLP), one edit per the plan leaves MISP holding exactly the built event: every
        /// built attribute live and as built, every other attribute deleted, the built tags and
        /// report; the edit is never refused as not newer; and a second plan is a no-op.
        #[test]
        fn one_edit_converges(
            before in attributes(), after in attributes(),
            deleted in proptest::collection::vec(any::<bool>(), 12),
            before_ts in 0u64..600, after_ts in 0u64..600,
            report_changed in any::<bool>(), tlp_changed in any::<bool>(),
        ) {
            let mut old = event(before, before_ts, "r", "amber");
            for (a, d) in old.attributes.iter_mut().zip(&deleted) {
                a.deleted = *d;
            }
            let stored = added(&old);
            let built = event(after, after_ts, if report_changed { "r2" } else { "r" },
                if tlp_changed { "red" } else { "amber" });
            let plan = plan_edit(&built, &stored);
            prop_assert!(plan.timestamp > stored.timestamp);
            for a in &plan.send {
                if let Some(copy) = stored.attributes.iter().find(|s| s.uuid == a.uuid) {
                    prop_assert!(seconds(&a.timestamp) > copy.timestamp);
                }
                prop_assert!(seconds(&a.timestamp) <= plan.timestamp);
            }
            let next = if plan.is_noop() {
                stored.clone()
            } else {
                let body = edit_body(&built.uuid, Some(&built), &plan).unwrap();
                misp_edit(&stored, &body).map_err(TestCaseError::fail)?
            };
            let v = verify(Expected::event(&built, &plan.deletions), &next);
            prop_assert!(v.problems.is_empty(), "{:?}", v.problems);
            prop_assert_eq!(v.present as usize, built.attributes.len());
            let live: HashSet<&str> = next.attributes.iter().filter(|a| !a.deleted).map(|a| a.uuid.as_str()).collect();
            let wanted: HashSet<&str> = built.attributes.iter().map(|a| a.uuid.as_str()).collect();
            prop_assert_eq!(live, wanted);
            prop_assert!(plan_edit(&built, &next).is_noop());
        }
    }
}
