//! A feed event against the file it replaces: what a MISP instance that pulled the previous file
//! needs in order to take the change (reference `misp.md` §4.2-4.3).
//!
//! MISP imports a known event with `Event::_edit`, which merges: it refetches an event only when
//! the manifest's `timestamp` is newer than its copy, updates an attribute only when the
//! attribute's `timestamp` is newer than its copy, and keeps every attribute the file no longer
//! holds. So, against the previous file of the same event:
//!
//! * an attribute of the previous file that the build no longer holds is carried over with
//!   `"deleted": true` (MISP's soft delete) and a timestamp newer than its previous one; one that
//!   was already deleted is carried over as it was;
//! * an attribute (or the report) whose content changed gets a timestamp newer than its previous
//!   one; an unchanged one keeps its previous timestamp;
//! * when anything but timestamps changed, the event's timestamp is newer than the previous one
//!   (and not older than any attribute's); when nothing changed, the previous timestamp is kept,
//!   so the event is exactly the previous one and an unchanged re-run rewrites the same bytes.
//!
//! Newer means the built timestamp (the source's dates) when it is newer, else the previous one
//! plus one second: never the clock.

use std::collections::{HashMap, HashSet};

use super::event::{Attribute, Event, EventReport};

fn seconds(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

/// `built`, unless it is not newer than `previous`: then `previous` + 1.
fn newer(built: &str, previous: &str) -> u64 {
    seconds(built).max(seconds(previous).saturating_add(1))
}

fn same_attribute(a: &Attribute, b: &Attribute) -> bool {
    Attribute {
        timestamp: String::new(),
        ..a.clone()
    } == Attribute {
        timestamp: String::new(),
        ..b.clone()
    }
}

fn same_report(a: &EventReport, b: &EventReport) -> bool {
    EventReport {
        timestamp: String::new(),
        ..a.clone()
    } == EventReport {
        timestamp: String::new(),
        ..b.clone()
    }
}

/// The event with every timestamp blanked: what "changed" compares.
fn without_timestamps(event: &Event) -> Event {
    let mut event = event.clone();
    event.timestamp.clear();
    for attribute in &mut event.attributes {
        attribute.timestamp.clear();
    }
    for report in &mut event.reports {
        report.timestamp.clear();
    }
    event
}

/// The event to write in place of `previous` (the same event's file from the previous export)
/// for the freshly built `built`. Attributes and reports are matched by uuid; the result holds
/// `built`'s attributes in their order, then those of `previous` that `built` lacks, in their
/// previous order, all deleted.
pub fn merge(previous: &Event, built: Event) -> Event {
    let mut merged = built;
    let previous_attributes: HashMap<&str, &Attribute> = previous
        .attributes
        .iter()
        .map(|a| (a.uuid.as_str(), a))
        .collect();
    for attribute in &mut merged.attributes {
        if let Some(copy) = previous_attributes.get(attribute.uuid.as_str()) {
            attribute.timestamp = if same_attribute(attribute, copy) {
                copy.timestamp.clone()
            } else {
                newer(&attribute.timestamp, &copy.timestamp).to_string()
            };
        }
    }
    let previous_reports: HashMap<&str, &EventReport> = previous
        .reports
        .iter()
        .map(|r| (r.uuid.as_str(), r))
        .collect();
    for report in &mut merged.reports {
        if let Some(copy) = previous_reports.get(report.uuid.as_str()) {
            report.timestamp = if same_report(report, copy) {
                copy.timestamp.clone()
            } else {
                newer(&report.timestamp, &copy.timestamp).to_string()
            };
        }
    }

    // What the build no longer holds: retracted now (timestamps set below), or already.
    let built_attributes: HashSet<String> =
        merged.attributes.iter().map(|a| a.uuid.clone()).collect();
    let mut retracted_attributes = Vec::new();
    for attribute in &previous.attributes {
        if built_attributes.contains(&attribute.uuid) {
            continue;
        }
        if attribute.deleted {
            merged.attributes.push(attribute.clone());
        } else {
            retracted_attributes.push(merged.attributes.len());
            merged.attributes.push(Attribute {
                deleted: true,
                ..attribute.clone()
            });
        }
    }
    let built_reports: HashSet<String> = merged.reports.iter().map(|r| r.uuid.clone()).collect();
    let mut retracted_reports = Vec::new();
    for report in &previous.reports {
        if built_reports.contains(&report.uuid) {
            continue;
        }
        if !report.deleted {
            retracted_reports.push(merged.reports.len());
        }
        merged.reports.push(EventReport {
            deleted: true,
            ..report.clone()
        });
    }

    if without_timestamps(&merged) == without_timestamps(previous) {
        // Nothing a MISP instance would take: the previous event as it was (every attribute and
        // report already carries its previous timestamp).
        merged.timestamp = previous.timestamp.clone();
        return merged;
    }
    // The event is newer than its previous copy, than every attribute and report it holds, and
    // than the previous copies of those it retracts; retractions are dated with the event.
    let held = merged
        .attributes
        .iter()
        .map(|a| seconds(&a.timestamp))
        .chain(merged.reports.iter().map(|r| seconds(&r.timestamp)));
    let retracted = retracted_attributes
        .iter()
        .map(|&i| &merged.attributes[i].timestamp)
        .chain(
            retracted_reports
                .iter()
                .map(|&i| &merged.reports[i].timestamp),
        )
        .map(|t| seconds(t).saturating_add(1));
    let timestamp = held
        .chain(retracted)
        .fold(newer(&merged.timestamp, &previous.timestamp), u64::max);
    merged.timestamp = timestamp.to_string();
    for &i in &retracted_attributes {
        merged.attributes[i].timestamp = merged.timestamp.clone();
    }
    for &i in &retracted_reports {
        merged.reports[i].timestamp = merged.timestamp.clone();
    }
    merged
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use crate::fixtures;
    use proptest::prelude::*;

    fn attribute(n: u8, timestamp: u64) -> Attribute {
        let comment = format!("MDTI indicator i{n}");
        fixtures::attribute(
            n.into(),
            "domain",
            &format!("v{n}.example"),
            timestamp,
            &comment,
        )
    }

    fn event(attributes: Vec<Attribute>, timestamp: u64, report: Option<&str>) -> Event {
        fixtures::event(attributes, timestamp, report, "amber")
    }

    fn by_uuid(event: &Event, n: u8) -> &Attribute {
        let uuid = attribute(n, 0).uuid;
        event.attributes.iter().find(|a| a.uuid == uuid).unwrap()
    }

    #[test]
    fn an_unchanged_event_is_the_previous_one() {
        let previous = event(vec![attribute(1, 100), attribute(2, 200)], 200, Some("r"));
        assert_eq!(merge(&previous, previous.clone()), previous);
    }

    #[test]
    fn a_removed_attribute_is_retracted_with_a_newer_timestamp() {
        let previous = event(vec![attribute(1, 100), attribute(2, 200)], 200, Some("r"));
        let built = event(vec![attribute(1, 100)], 100, Some("r"));
        let merged = merge(&previous, built.clone());
        assert_eq!(merged.timestamp, "201");
        assert_eq!(merged.attributes.len(), 2);
        assert_eq!(merged.attributes[0], attribute(1, 100));
        let retracted = by_uuid(&merged, 2);
        assert!(retracted.deleted);
        assert_eq!(retracted.timestamp, "201");
        assert_eq!(retracted.value, "v2.example");
        assert_eq!(retracted.comment, "MDTI indicator i2");
        // The report did not change: it keeps its timestamp.
        assert_eq!(merged.reports[0].timestamp, "200");
        // A re-run of the same build changes nothing, and it stays retracted.
        assert_eq!(merge(&merged, built.clone()), merged);
        // It comes back: no longer deleted, and newer than its retraction.
        let back = merge(
            &merged,
            event(vec![attribute(1, 100), attribute(2, 200)], 200, Some("r")),
        );
        assert!(!by_uuid(&back, 2).deleted);
        assert_eq!(by_uuid(&back, 2).timestamp, "202");
        assert_eq!(back.timestamp, "202");
    }

    #[test]
    fn a_reworded_report_raises_the_report_and_event_timestamps() {
        let previous = event(vec![attribute(1, 100)], 150, Some("old text"));
        let merged = merge(
            &previous,
            event(vec![attribute(1, 100)], 150, Some("new text")),
        );
        assert_eq!(merged.timestamp, "151");
        assert_eq!(merged.reports[0].timestamp, "151");
        assert_eq!(merged.attributes[0].timestamp, "100");
        // A newer source date is kept as it is.
        let merged = merge(
            &previous,
            event(vec![attribute(1, 100)], 900, Some("new text")),
        );
        assert_eq!(merged.timestamp, "900");
        assert_eq!(merged.reports[0].timestamp, "900");
    }

    #[test]
    fn a_changed_attribute_gets_a_newer_timestamp() {
        let previous = event(vec![attribute(1, 100)], 100, None);
        let mut changed = attribute(1, 100);
        changed.comment = "MDTI indicators i1; j1".into();
        let merged = merge(&previous, event(vec![changed], 100, None));
        assert_eq!(merged.attributes[0].timestamp, "101");
        assert_eq!(merged.timestamp, "101");
    }

    #[test]
    fn header_and_tag_changes_raise_the_event_timestamp() {
        let previous = event(vec![attribute(1, 100)], 100, None);
        let mut built = previous.clone();
        built.tags[0].name = "tlp:green".into();
        assert_eq!(merge(&previous, built).timestamp, "101");
        let mut built = previous.clone();
        built.info = "Threat actor profile: Y".into();
        let merged = merge(&previous, built);
        assert_eq!(merged.timestamp, "101");
        assert_eq!(merged.attributes[0].timestamp, "100");
    }

    #[test]
    fn an_emptied_event_retracts_everything() {
        let previous = event(vec![attribute(1, 100), attribute(2, 300)], 250, Some("r"));
        let merged = merge(&previous, event(vec![], 0, None));
        assert_eq!(merged.timestamp, "301");
        assert!(
            merged
                .attributes
                .iter()
                .all(|a| a.deleted && a.timestamp == "301")
        );
        assert!(merged.reports[0].deleted);
        assert_eq!(merge(&merged, event(vec![], 0, None)), merged);
    }

    // --- properties ------------------------------------------------------------------------

    /// An event over a small pool of attributes, so that two of them share uuids.
    fn any_event() -> impl Strategy<Value = Event> {
        let attribute = (0u8..6, 0u64..400, 0u8..3, any::<bool>()).prop_map(
            |(n, timestamp, comment, deleted)| {
                let mut a = attribute(n, timestamp);
                a.comment = format!("c{comment}");
                a.deleted = deleted;
                a
            },
        );
        (
            proptest::collection::vec(attribute, 0..6),
            0u64..500,
            proptest::option::of(prop_oneof!["a", "b"]),
            0u8..2,
        )
            .prop_map(|(attributes, timestamp, report, info)| {
                let mut seen = HashSet::new();
                let attributes = attributes
                    .into_iter()
                    .filter(|a| seen.insert(a.uuid.clone()))
                    .collect();
                let mut e = event(attributes, timestamp, report.as_deref());
                e.info = format!("Threat actor profile: X{info}");
                e
            })
    }

    /// A build: what the builder gives (nothing deleted, the event not older than its
    /// attributes).
    fn any_build() -> impl Strategy<Value = Event> {
        any_event().prop_map(|mut e| {
            for a in &mut e.attributes {
                a.deleted = false;
            }
            let newest = e.attributes.iter().map(|a| seconds(&a.timestamp)).max();
            e.timestamp = seconds(&e.timestamp).max(newest.unwrap_or(0)).to_string();
            e
        })
    }

    proptest! {
        #[test]
        fn unchanged_is_identical(event in any_event()) {
            prop_assert_eq!(merge(&event, event.clone()), event);
        }

        #[test]
        fn a_rerun_of_the_same_build_is_identical(previous in any_event(), built in any_build()) {
            let merged = merge(&previous, built.clone());
            prop_assert_eq!(merge(&merged, built), merged);
        }

        #[test]
        fn every_change_is_newer(previous in any_event(), built in any_build()) {
            let merged = merge(&previous, built.clone());
            let changed = without_timestamps(&merged) != without_timestamps(&previous);
            if changed {
                prop_assert!(seconds(&merged.timestamp) > seconds(&previous.timestamp));
            } else {
                prop_assert_eq!(&merged, &previous);
            }
            // The build's attributes, as built but for their timestamps, then the rest deleted.
            prop_assert_eq!(
                without_timestamps(&Event { attributes: merged.attributes[..built.attributes.len()].to_vec(), ..merged.clone() }).attributes,
                without_timestamps(&built).attributes
            );
            for a in &merged.attributes[built.attributes.len()..] {
                prop_assert!(a.deleted);
            }
            for a in &merged.attributes {
                prop_assert!(seconds(&a.timestamp) <= seconds(&merged.timestamp) || !changed);
                match previous.attributes.iter().find(|p| p.uuid == a.uuid) {
                    Some(p) if same_attribute(a, p) => prop_assert_eq!(&a.timestamp, &p.timestamp),
                    Some(p) => prop_assert!(seconds(&a.timestamp) > seconds(&p.timestamp)),
                    None => {}
                }
            }
            // Nothing of the previous file is lost.
            for p in &previous.attributes {
                prop_assert!(merged.attributes.iter().any(|a| a.uuid == p.uuid));
            }
        }
    }
}
