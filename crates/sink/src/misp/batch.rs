//! The attributes of the event being built: each indicator occurrence becomes an attribute whose
//! value is what MISP stores; occurrences that MISP would collapse (same type and value in one
//! event) are merged here, keeping every MDTI indicator id in the comment, the earliest first
//! sighting and the latest last sighting.
//!
//! A batch holds at most `--misp-max-attributes` attributes: the sink writes the event and starts
//! an extension event when it is full, so memory is bounded however large a profile is.

use std::collections::HashMap;

use ctiport_model::record::MappedIndicator;
use ctiport_model::timestamp::Timestamp;
use uuid::Uuid;

use super::event::{Attribute, DISTRIBUTION_INHERIT};
use super::mapping::{AttributeMapping, AttributeTable};
use super::normalize::{MispType, has_supplementary, normalize, prepare};
use super::text::{iso_micro, multi_line, unix_seconds};

/// How many MDTI indicator ids one attribute comment lists (the rest are counted).
const LISTED_IDS: usize = 50;

/// What an indicator value becomes in MISP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub misp_type: MispType,
    pub category: String,
    pub to_ids: bool,
    /// The value as MISP stores it.
    pub value: String,
    /// Why the value is not exactly the indicator's (fallback type, replaced characters).
    pub notes: Vec<String>,
}

/// Maps one indicator value through the table: its type's mapping when MISP accepts the value
/// under that type, else the fallback mapping. `Err` only for a value MISP cannot store at all
/// (longer than 65,535 bytes).
pub fn candidate(table: &AttributeTable, indicator: &MappedIndicator) -> Result<Candidate, String> {
    let primary = table.mapping(indicator.observable_type);
    match build(primary, &indicator.value) {
        Ok(candidate) => Ok(candidate),
        Err(reason) => {
            let fallback = table.fallback();
            let mut candidate = build(fallback, &indicator.value).map_err(|why| {
                format!(
                    "MISP can store the value neither as {} ({reason}) nor as {} ({why})",
                    primary.misp_type.as_str(),
                    fallback.misp_type.as_str()
                )
            })?;
            candidate.notes.insert(
                0,
                format!(
                    "exported as {}: MISP refuses it as {} ({reason})",
                    fallback.misp_type.as_str(),
                    primary.misp_type.as_str()
                ),
            );
            Ok(candidate)
        }
    }
}

fn build(mapping: &AttributeMapping, value: &str) -> Result<Candidate, String> {
    let prepared = prepare(mapping.misp_type, value);
    let stored = normalize(mapping.misp_type, &prepared)?;
    let mut notes = Vec::new();
    if has_supplementary(&prepared) {
        notes.push(
            "characters outside the Basic Multilingual Plane were replaced by '?': MISP stores \
             attribute values as utf8mb3"
                .to_owned(),
        );
    }
    Ok(Candidate {
        misp_type: mapping.misp_type,
        category: mapping.category.clone(),
        to_ids: mapping.to_ids,
        value: stored,
        notes,
    })
}

/// One attribute being built.
#[derive(Debug)]
struct Pending {
    candidate: Candidate,
    /// `(indicator id, source, confidence)` of every occurrence merged into this attribute.
    occurrences: Vec<(String, Option<String>, Option<u8>)>,
    first_seen: Option<Timestamp>,
    last_seen: Option<Timestamp>,
}

/// The attributes of one event.
#[derive(Debug, Default)]
pub struct Batch {
    pending: Vec<Pending>,
    index: HashMap<(MispType, String), usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether an attribute with this type and value is already in the event (MISP would collapse
    /// a second one, and both would get the same uuid).
    pub fn contains(&self, candidate: &Candidate) -> bool {
        self.index
            .contains_key(&(candidate.misp_type, candidate.value.clone()))
    }

    /// Adds an occurrence: merged into the attribute with the same type and value, or new.
    pub fn add(&mut self, candidate: Candidate, indicator: &MappedIndicator) {
        let occurrence = (
            indicator.indicator_id.clone(),
            indicator.source.as_ref().map(|s| s.as_str().to_owned()),
            indicator.confidence,
        );
        let (first_seen, last_seen) = ordered(indicator.first_seen, indicator.last_seen);
        let key = (candidate.misp_type, candidate.value.clone());
        match self.index.get(&key) {
            Some(&position) => {
                let pending = &mut self.pending[position];
                pending.occurrences.push(occurrence);
                pending.first_seen = min_date(pending.first_seen, first_seen);
                pending.last_seen = max_date(pending.last_seen, last_seen);
                for note in candidate.notes {
                    if !pending.candidate.notes.contains(&note) {
                        pending.candidate.notes.push(note);
                    }
                }
            }
            None => {
                self.index.insert(key, self.pending.len());
                self.pending.push(Pending {
                    candidate,
                    occurrences: vec![occurrence],
                    first_seen,
                    last_seen,
                });
            }
        }
    }

    /// The earliest date of any attribute, for an event date when the profile has none.
    pub fn earliest(&self) -> Option<Timestamp> {
        self.pending
            .iter()
            .flat_map(|p| [p.first_seen, p.last_seen])
            .flatten()
            .min()
    }

    /// The finished attributes of the event `event`, and the latest of their timestamps.
    /// `undated` is the timestamp of an attribute without any sighting date.
    pub fn into_attributes(self, event: Uuid, undated: u64) -> (Vec<Attribute>, u64) {
        let mut newest = 0;
        let attributes = self
            .pending
            .into_iter()
            .map(|pending| {
                let (first_seen, last_seen) = ordered(pending.first_seen, pending.last_seen);
                let timestamp = last_seen
                    .or(first_seen)
                    .map(unix_seconds)
                    .unwrap_or(undated);
                newest = newest.max(timestamp);
                let misp_type = pending.candidate.misp_type.as_str();
                Attribute {
                    uuid: super::uuid::attribute_uuid(event, misp_type, &pending.candidate.value)
                        .to_string(),
                    misp_type: misp_type.to_owned(),
                    category: pending.candidate.category,
                    to_ids: pending.candidate.to_ids,
                    comment: comment(&pending.occurrences, &pending.candidate.notes),
                    value: pending.candidate.value,
                    distribution: DISTRIBUTION_INHERIT.to_owned(),
                    timestamp: timestamp.to_string(),
                    first_seen: first_seen.map(iso_micro),
                    last_seen: last_seen.map(iso_micro),
                    disable_correlation: false,
                    deleted: false,
                }
            })
            .collect();
        (attributes, newest)
    }
}

fn min_date(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_date(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// MISP refuses an attribute whose `last_seen` is before its `first_seen`; the two sightings
/// bound the same interval, so they are put in order.
fn ordered(
    first: Option<Timestamp>,
    last: Option<Timestamp>,
) -> (Option<Timestamp>, Option<Timestamp>) {
    match (first, last) {
        (Some(first), Some(last)) if last < first => (Some(last), Some(first)),
        other => other,
    }
}

/// `MDTI indicator <id> (source microsoft, confidence 85)`, several joined by `; `, then the notes.
fn comment(occurrences: &[(String, Option<String>, Option<u8>)], notes: &[String]) -> String {
    let describe = |(id, source, confidence): &(String, Option<String>, Option<u8>)| {
        let mut facts = Vec::new();
        if let Some(source) = source {
            facts.push(format!("source {source}"));
        }
        if let Some(confidence) = confidence {
            facts.push(format!("confidence {confidence}"));
        }
        if facts.is_empty() {
            id.clone()
        } else {
            format!("{id} ({})", facts.join(", "))
        }
    };
    let listed: Vec<String> = occurrences.iter().take(LISTED_IDS).map(describe).collect();
    let mut text = if occurrences.len() == 1 {
        format!("MDTI indicator {}", listed.join("; "))
    } else {
        format!("MDTI indicators {}", listed.join("; "))
    };
    if occurrences.len() > LISTED_IDS {
        text.push_str(&format!("; and {} more", occurrences.len() - LISTED_IDS));
    }
    for note in notes {
        text.push_str(". ");
        text.push_str(note);
    }
    multi_line(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use ctiport_model::graph::IndicatorSource;
    use ctiport_model::record::ObservableType;

    pub(crate) fn indicator(
        id: &str,
        observable: ObservableType,
        value: &str,
        first: Option<&str>,
        last: Option<&str>,
    ) -> MappedIndicator {
        MappedIndicator {
            indicator_id: id.into(),
            profile_id: "p".into(),
            observable_type: observable,
            value: value.into(),
            source: Some(IndicatorSource::Microsoft),
            first_seen: first.and_then(Timestamp::parse),
            last_seen: last.and_then(Timestamp::parse),
            confidence: Some(85),
            host: None,
            stix_id: format!("indicator--{id}"),
            objects: Vec::new(),
        }
    }

    #[test]
    fn values_misp_refuses_fall_back_to_text() {
        let table = AttributeTable::embedded().unwrap();
        let wildcard = indicator("1", ObservableType::Domain, "*.evil.example", None, None);
        let c = candidate(&table, &wildcard).unwrap();
        assert_eq!(c.misp_type, MispType::Text);
        assert!(!c.to_ids);
        assert!(c.notes[0].contains("refuses it as domain"), "{:?}", c.notes);
        let idn = indicator("2", ObservableType::Domain, "bücher.example", None, None);
        assert_eq!(
            candidate(&table, &idn).unwrap().value,
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn duplicates_merge_and_dates_are_ordered() {
        let table = AttributeTable::embedded().unwrap();
        let mut batch = Batch::default();
        let a = indicator(
            "a",
            ObservableType::Email,
            "First@example.com",
            Some("2024-03-01T00:00:00Z"),
            Some("2024-01-01T00:00:00Z"),
        );
        let b = indicator(
            "b",
            ObservableType::Email,
            "first@example.com",
            Some("2023-01-01T00:00:00Z"),
            None,
        );
        for i in [&a, &b] {
            let c = candidate(&table, i).unwrap();
            batch.add(c, i);
        }
        assert_eq!(batch.len(), 1);
        let event = super::super::uuid::event_uuid("p", 1);
        let (attributes, newest) = batch.into_attributes(event, 7);
        let attribute = &attributes[0];
        assert_eq!(attribute.value, "first@example.com");
        assert_eq!(
            attribute.first_seen.as_deref(),
            Some("2023-01-01T00:00:00.000000+00:00")
        );
        assert_eq!(
            attribute.last_seen.as_deref(),
            Some("2024-03-01T00:00:00.000000+00:00")
        );
        assert!(
            attribute
                .comment
                .starts_with("MDTI indicators a (source microsoft, confidence 85); b")
        );
        assert_eq!(newest, 1_709_251_200);
        assert_eq!(attribute.timestamp, "1709251200");
    }
}
