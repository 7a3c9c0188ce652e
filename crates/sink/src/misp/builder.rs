//! From the mapped stream to finished MISP events, for every MISP sink (`misp-feed:` files,
//! `misp:` REST pushes): a profile opens an event; its indicators become attributes of that event;
//! when the event holds `--misp-max-attributes` attributes it is complete and an extension event
//! (`extends_uuid` = the profile's main event) takes the rest; the next profile completes it.
//!
//! An event's attributes are held only until the event is complete, so memory is bounded by the
//! attribute limit, never by the size of the export; what is remembered per profile is a few
//! strings.

use std::collections::HashMap;
use std::sync::Arc;

use ctiport_model::graph::{IntelProfile, ProfileKind};
use ctiport_model::record::{Mapped, MappedIndicator, MappedProfile};
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

/// A finished event and where it comes from.
#[derive(Clone, Debug)]
pub struct BuiltEvent {
    pub event: Event,
    pub profile_id: String,
    /// 1 for the profile's main event, 2, 3, … for its extension events.
    pub part: u32,
}

pub struct EventBuilder {
    options: MispOptions,
    profiles: HashMap<String, ProfileMemo>,
    current: Option<Building>,
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
        })
    }

    /// Takes one record; returns the events it completed (none, or the previous event).
    pub fn add(&mut self, record: &Mapped) -> Result<Vec<BuiltEvent>, SinkError> {
        let mut completed = Vec::new();
        match record {
            Mapped::Profile(profile) => self.open_profile(profile, &mut completed)?,
            Mapped::Indicator(indicator) => self.add_indicator(indicator, &mut completed)?,
            // Events are built from the current state; a revocation names nothing to add.
            Mapped::Revoked(_) => {}
        }
        Ok(completed)
    }

    /// Completes the last event, if any.
    pub fn finish(&mut self) -> Result<Option<BuiltEvent>, SinkError> {
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

    fn open_profile(
        &mut self,
        profile: &MappedProfile,
        completed: &mut Vec<BuiltEvent>,
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
        completed: &mut Vec<BuiltEvent>,
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
        completed: &mut Vec<BuiltEvent>,
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
    fn close_event(&mut self) -> Result<Option<BuiltEvent>, SinkError> {
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
        Ok(Some(BuiltEvent {
            event,
            profile_id: building.profile_id,
            part: building.part,
        }))
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
