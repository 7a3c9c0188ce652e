//! From the mapped stream to finished MISP events, for every MISP sink (`misp-feed:` files,
//! `misp:` REST pushes): a profile opens an event; its indicators become attributes of that event;
//! when the event holds `--misp-max-attributes` attributes it is complete and an extension event
//! (`extends_uuid` = the profile's main event) takes the rest; the next profile completes it.
//!
//! An event's attributes are held only until the event is complete, so memory is bounded by the
//! attribute limit, never by the size of the export; what is remembered per profile is a few
//! strings.
//!
//! With a state store (`--state`), revocations follow the source's records. Events are built
//! from the current records only, but a revoked membership (`indicates`) of a profile that this
//! run did not list tells that the profile vanished from the source: the builder remembers its
//! id ([`EventBuilder::vanished`]), so that each sink can retire that profile's events in its
//! target (every attribute deleted) instead of leaving them live.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ctiport_model::graph::{IntelProfile, ProfileKind};
use ctiport_model::record::{Mapped, MappedIndicator, MappedProfile, Revocation};
use ctiport_model::timestamp::Timestamp;
use uuid::Uuid;

use super::batch::{Batch, candidate};
use super::config::MispOptions;
use super::event::{
    ANALYSIS_COMPLETED, DISTRIBUTION_INHERIT, Event, EventReport, OrgRef, THREAT_LEVEL_UNDEFINED,
    Tag, event_tags, info,
};
use super::report;
use super::text::{date, unix_seconds};
use super::uuid::{event_uuid, report_uuid};
use crate::SinkError;

/// The date of an event with no date at all (no `firstActiveDateTime`, no sighting): the Unix
/// epoch, as for undated STIX objects.
const EPOCH_DATE: &str = "1970-01-01";

/// What the builder remembers of every profile (a few strings; grows with profiles, not
/// indicators).
struct ProfileMemo {
    kind: ProfileKind,
    title: String,
    tags: Vec<Tag>,
    first_active: Option<Timestamp>,
    /// The main event's date, shared by its extension events.
    date: Option<String>,
    next_part: u32,
}

/// The event being built.
struct Building {
    profile_id: String,
    part: u32,
    uuid: Uuid,
    batch: Batch,
    /// The profile, for the main event's report (extension events carry none).
    profile: Option<Arc<IntelProfile>>,
}

pub struct EventBuilder {
    options: MispOptions,
    profiles: HashMap<String, ProfileMemo>,
    current: Option<Building>,
    /// Profiles whose memberships were revoked while the profile itself was not listed in this
    /// run: one id per vanished profile.
    vanished: BTreeSet<String>,
}

impl EventBuilder {
    pub fn new(options: MispOptions) -> Result<Self, SinkError> {
        if options.max_attributes == 0 {
            return Err(SinkError::Other(
                "the MISP attribute limit must be at least 1".into(),
            ));
        }
        Ok(EventBuilder {
            options,
            profiles: HashMap::new(),
            current: None,
            vanished: BTreeSet::new(),
        })
    }

    /// Takes one record; returns the events it completed (none, or the previous event).
    pub fn add(&mut self, record: &Mapped) -> Result<Vec<Event>, SinkError> {
        let mut completed = Vec::new();
        match record {
            Mapped::Profile(profile) => self.open_profile(profile, &mut completed)?,
            Mapped::Indicator(indicator) => self.add_indicator(indicator, &mut completed)?,
            // Events are built from the current state; a revocation adds nothing to them, but
            // may tell that a profile vanished.
            Mapped::Revoked(revocation) => self.note_revocation(revocation),
        }
        Ok(completed)
    }

    /// Completes the last event, if any.
    pub fn finish(&mut self) -> Result<Option<Event>, SinkError> {
        self.close_event()
    }

    /// Every profile seen and how many events it was given (main event included), in profile
    /// id order so that retiring stale extension events is deterministic.
    pub fn parts(&self) -> Vec<(String, u32)> {
        let mut parts: Vec<(String, u32)> = self
            .profiles
            .iter()
            .map(|(id, memo)| (id.clone(), memo.next_part - 1))
            .collect();
        parts.sort();
        parts
    }

    /// The profiles that vanished from the source: a revocation ended one of their memberships
    /// and this run did not list them. In id order, so that retiring their events is
    /// deterministic. Empty without a state store (no revocations arrive).
    pub fn vanished(&self) -> Vec<String> {
        self.vanished
            .iter()
            .filter(|id| !self.profiles.contains_key(*id))
            .cloned()
            .collect()
    }

    /// Revocations come after every source record, so a profile not seen by then was not listed
    /// in this run. Only revoked memberships name a profile; a profile without indicators has
    /// none, and its (attribute-less) event needs no retirement.
    fn note_revocation(&mut self, revocation: &Revocation) {
        if let Some(membership) = &revocation.membership
            && !self.profiles.contains_key(&membership.profile_id)
            && !self.vanished.contains(&membership.profile_id)
        {
            self.vanished.insert(membership.profile_id.clone());
        }
    }

    /// Extension event `part` of a profile seen in this export, without any attribute: the
    /// header of an extension event that this export no longer fills (the profile shrank), so
    /// that an earlier copy of it can be retracted. `None` for an unknown profile or part 1.
    pub fn empty_part(&self, profile_id: &str, part: u32) -> Option<Event> {
        let memo = self.profiles.get(profile_id)?;
        if part < 2 {
            return None;
        }
        let date = memo
            .date
            .clone()
            .or_else(|| memo.first_active.map(date))
            .unwrap_or_else(|| EPOCH_DATE.to_owned());
        Some(header(&self.options, memo, profile_id, part, date))
    }

    /// A stored event of a profile this export no longer lists (a vanished profile), emptied:
    /// the target's own copy (the feed's previous file) with its header, tags, `Orgc` and report
    /// as they are, and no attribute, so that merging it with that copy retracts every attribute
    /// and changes nothing else. The builder knows nothing of a profile it was not given in this
    /// run (title, kind, first activity), so the header is the copy's rather than a minimal one
    /// that would rename or re-date the event; the report stays, as on a MISP instance, where a
    /// retirement sends attributes only.
    pub fn emptied(copy: &Event) -> Event {
        Event {
            uuid: copy.uuid.clone(),
            info: copy.info.clone(),
            date: copy.date.clone(),
            threat_level_id: copy.threat_level_id.clone(),
            analysis: copy.analysis.clone(),
            distribution: copy.distribution.clone(),
            published: copy.published,
            timestamp: "0".into(),
            publish_timestamp: copy.publish_timestamp.clone(),
            extends_uuid: copy.extends_uuid.clone(),
            orgc: copy.orgc.clone(),
            tags: copy.tags.clone(),
            // Not `..copy.clone()`: the copy may hold thousands of attributes.
            attributes: Vec::new(),
            reports: copy.reports.clone(),
        }
    }

    fn open_profile(
        &mut self,
        profile: &MappedProfile,
        completed: &mut Vec<Event>,
    ) -> Result<(), SinkError> {
        completed.extend(self.close_event()?);
        let title = if profile.title.trim().is_empty() {
            profile.profile_id.clone()
        } else {
            profile.title.clone()
        };
        self.profiles.insert(
            profile.profile_id.clone(),
            ProfileMemo {
                kind: profile.kind.clone(),
                tags: event_tags(&self.options, &profile.kind, &title),
                title,
                first_active: profile.profile.first_active,
                date: None,
                next_part: 2,
            },
        );
        self.current = Some(Building {
            profile_id: profile.profile_id.clone(),
            part: 1,
            uuid: event_uuid(&profile.profile_id, 1),
            batch: Batch::default(),
            profile: Some(profile.profile.clone()),
        });
        Ok(())
    }

    /// Completes the current event and opens the next extension event of `profile_id`.
    fn open_extension(
        &mut self,
        profile_id: &str,
        completed: &mut Vec<Event>,
    ) -> Result<(), SinkError> {
        completed.extend(self.close_event()?);
        let memo = self.profiles.get_mut(profile_id).ok_or_else(|| {
            SinkError::Other(format!(
                "an indicator of profile '{profile_id}' arrived before the profile itself"
            ))
        })?;
        let part = memo.next_part;
        memo.next_part += 1;
        self.current = Some(Building {
            profile_id: profile_id.to_owned(),
            part,
            uuid: event_uuid(profile_id, part),
            batch: Batch::default(),
            profile: None,
        });
        Ok(())
    }

    fn add_indicator(
        &mut self,
        indicator: &MappedIndicator,
        completed: &mut Vec<Event>,
    ) -> Result<(), SinkError> {
        let same_profile = self
            .current
            .as_ref()
            .is_some_and(|c| c.profile_id == indicator.profile_id);
        if !same_profile {
            // Records come profile by profile; this only happens if a profile's indicators are
            // split in the stream. They go to a further extension event of that profile.
            self.open_extension(&indicator.profile_id, completed)?;
        }
        let candidate = match candidate(&self.options.table, indicator) {
            Ok(candidate) => candidate,
            Err(reason) => {
                tracing::warn!(id = %indicator.indicator_id, profile = %indicator.profile_id, "not exported to MISP: {reason}");
                return Ok(());
            }
        };
        let full = self.current.as_ref().is_some_and(|c| {
            c.batch.len() >= self.options.max_attributes && !c.batch.contains(&candidate)
        });
        if full {
            self.open_extension(&indicator.profile_id, completed)?;
        }
        if let Some(current) = self.current.as_mut() {
            current.batch.add(candidate, indicator);
        }
        Ok(())
    }

    /// Turns the event being built, if any, into a finished event.
    fn close_event(&mut self) -> Result<Option<Event>, SinkError> {
        let Some(building) = self.current.take() else {
            return Ok(None);
        };
        let memo = self
            .profiles
            .get_mut(&building.profile_id)
            .ok_or_else(|| SinkError::Other("internal: event of an unknown profile".into()))?;
        let first_active = memo.first_active.map(unix_seconds);
        let date = match (&memo.date, building.part) {
            (Some(date), part) if part > 1 => date.clone(),
            _ => memo
                .first_active
                .or(building.batch.earliest())
                .map(date)
                .unwrap_or_else(|| EPOCH_DATE.to_owned()),
        };
        if building.part == 1 {
            memo.date = Some(date.clone());
        }
        let (attributes, newest) = building
            .batch
            .into_attributes(building.uuid, first_active.unwrap_or(0));
        // The event's timestamp comes from the source's dates, never the clock: re-exporting the
        // same input gives the same timestamp, and a newer sighting gives a newer one. A change
        // that moves no date is dated against the copy it replaces by each sink (the feed's
        // previous file: `merge`; the instance's copy: `rest::upsert`).
        let timestamp = if building.part == 1 {
            newest.max(first_active.unwrap_or(0))
        } else {
            newest
        };
        let reports = match &building.profile {
            Some(profile) => vec![EventReport {
                uuid: report_uuid(building.uuid).to_string(),
                name: report::name(&memo.title),
                content: report::content(profile, &memo.title),
                distribution: DISTRIBUTION_INHERIT.to_owned(),
                timestamp: timestamp.to_string(),
                deleted: false,
            }],
            None => Vec::new(),
        };
        let event = Event {
            timestamp: timestamp.to_string(),
            attributes,
            reports,
            ..header(
                &self.options,
                memo,
                &building.profile_id,
                building.part,
                date,
            )
        };
        Ok(Some(event))
    }
}

/// Event `part` of a profile, without attributes, report or timestamp.
fn header(
    options: &MispOptions,
    memo: &ProfileMemo,
    profile_id: &str,
    part: u32,
    date: String,
) -> Event {
    Event {
        uuid: event_uuid(profile_id, part).to_string(),
        info: info(&memo.kind, &memo.title, part),
        date,
        threat_level_id: THREAT_LEVEL_UNDEFINED.to_string(),
        analysis: ANALYSIS_COMPLETED.to_string(),
        distribution: options.distribution.level().to_string(),
        published: false,
        timestamp: "0".into(),
        publish_timestamp: "0".into(),
        extends_uuid: if part > 1 {
            event_uuid(profile_id, 1).to_string()
        } else {
            String::new()
        },
        orgc: OrgRef::from(&options.org),
        tags: memo.tags.clone(),
        attributes: Vec::new(),
        reports: Vec::new(),
    }
}

/// A revoked `indicates` relationship that ended `value`'s membership of `profile_id`, as the
/// state store streams it at the end of a run (for the MISP sinks' tests).
#[cfg(test)]
pub(crate) fn revoked_membership(profile_id: &str, value: &str) -> Mapped {
    use ctiport_model::record::{Emitted, Membership, ObservableType, Revocation, Version};
    use ctiport_model::stix::EncodedObject;
    let id = format!("relationship--{profile_id}-{value}");
    Mapped::Revoked(Revocation {
        object: Emitted {
            object: EncodedObject {
                id: id.as_str().into(),
                object_type: "relationship".into(),
                json: format!("{{\"id\":\"{id}\",\"revoked\":true}}").into(),
                references: Vec::new().into(),
            },
            first: true,
            version: Version { run: 2, origin: 1 },
        },
        membership: Some(Membership {
            profile_id: profile_id.into(),
            indicator_stix_id: format!("indicator--{value}"),
            observable_type: ObservableType::Domain,
            value: value.into(),
        }),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::misp::config::Distribution;
    use crate::misp::merge::merge;
    use ctiport_model::record::{Emitted, ObservableType, Version};
    use ctiport_model::stix::EncodedObject;

    fn options() -> MispOptions {
        fixtures::misp_options(Distribution::Community, 100)
    }

    fn profile(id: &str) -> Mapped {
        fixtures::actor(id)
    }

    fn indicator(profile_id: &str, value: &str) -> Mapped {
        fixtures::indicator(
            profile_id,
            &format!("i-{value}"),
            ObservableType::Domain,
            value,
        )
    }

    /// A revocation without a membership (a profile's SDO, report or note).
    fn revoked_object(id: &str) -> Mapped {
        Mapped::Revoked(Revocation {
            object: Emitted {
                object: EncodedObject {
                    id: id.into(),
                    object_type: "threat-actor".into(),
                    json: "{}".into(),
                    references: Vec::new().into(),
                },
                first: true,
                version: Version::default(),
            },
            membership: None,
        })
    }

    #[test]
    fn revoked_memberships_of_unlisted_profiles_name_the_vanished_profiles() {
        let mut builder = EventBuilder::new(options()).unwrap();
        let mut events = Vec::new();
        for record in [
            profile("listed"),
            indicator("listed", "a.example"),
            // Revocations follow the source: one completes nothing.
            revoked_membership("listed", "b.example"),
            revoked_membership("zeta", "c.example"),
            revoked_membership("gone", "d.example"),
            revoked_membership("gone", "e.example"),
            revoked_object("threat-actor--other"),
        ] {
            events.extend(builder.add(&record).unwrap());
        }
        assert!(events.is_empty());
        assert_eq!(builder.vanished(), ["gone", "zeta"]);
        assert_eq!(builder.vanished.len(), 2, "one entry per vanished profile");
        let last = builder.finish().unwrap().unwrap();
        assert_eq!(last.uuid, event_uuid("listed", 1).to_string());
        assert_eq!(last.attributes.len(), 1);
        assert_eq!(builder.parts(), [("listed".to_owned(), 1)]);
        // Without revocations (no state store), nothing vanished.
        let mut builder = EventBuilder::new(options()).unwrap();
        builder.add(&profile("listed")).unwrap();
        assert!(builder.vanished().is_empty());
    }

    #[test]
    fn an_emptied_copy_retracts_every_attribute_and_keeps_the_rest() {
        let mut builder = EventBuilder::new(options()).unwrap();
        builder.add(&profile("gone")).unwrap();
        builder.add(&indicator("gone", "a.example")).unwrap();
        builder.add(&indicator("gone", "b.example")).unwrap();
        let previous = builder.finish().unwrap().unwrap();
        let emptied = EventBuilder::emptied(&previous);
        assert!(emptied.attributes.is_empty());
        assert_eq!(emptied.reports, previous.reports);
        assert_eq!(
            (
                &emptied.uuid,
                &emptied.info,
                &emptied.date,
                &emptied.orgc,
                &emptied.tags
            ),
            (
                &previous.uuid,
                &previous.info,
                &previous.date,
                &previous.orgc,
                &previous.tags
            )
        );
        let retired = merge(&previous, emptied);
        let newest = previous
            .attributes
            .iter()
            .map(|a| a.timestamp.parse::<u64>().unwrap())
            .max()
            .unwrap();
        assert!(retired.timestamp.parse::<u64>().unwrap() > newest);
        assert_eq!(retired.attributes.len(), 2);
        for (now, before) in retired.attributes.iter().zip(&previous.attributes) {
            assert!(now.deleted && now.timestamp == retired.timestamp);
            assert_eq!((&now.uuid, &now.value), (&before.uuid, &before.value));
        }
        assert_eq!(retired.reports, previous.reports);
        assert_eq!(
            Event {
                timestamp: previous.timestamp.clone(),
                attributes: previous.attributes.clone(),
                ..retired.clone()
            },
            previous
        );
        // Retiring it again changes nothing.
        assert_eq!(merge(&retired, EventBuilder::emptied(&retired)), retired);
    }
}
