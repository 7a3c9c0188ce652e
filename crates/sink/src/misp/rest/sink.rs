//! The driver: the records go through the [`EventBuilder`] (the same events the feed writes), and
//! each event it completes is upserted at once, so memory holds one event (and the instance's
//! copy of it) whatever the size of the export.
//!
//! The upsert is MISP's own (reference `misp.md` §3.4, `ServerSyncTool::pushEvent`):
//! `HEAD /events/view/{uuid}`; absent → `POST /events/add` (a 404 with `Location` means another
//! writer created it meanwhile: edit it); present → read the copy, plan the edit
//! ([`upsert::plan_edit`]) and `POST /events/edit/{uuid}` unless there is nothing to change. An
//! edit refused as "not newer than the local copy" (someone edited the event in between) is
//! re-planned on a fresh copy, a few times.
//!
//! After the last event, the events the export no longer fills are retired (every live attribute
//! sent back deleted, nothing else): extension events beyond a profile's last part, and, with a
//! state store, every event of a profile that vanished from the source (its memberships revoked
//! while this run did not list it, [`EventBuilder::vanished`]).
//!
//! An event the instance refuses (validation, blocklist, another organisation's event) does not
//! stop the push: its attributes are counted as failed and named in the report, and the run
//! fails at the end. A refused key or role, an instance that stays unreachable, or 1,000 failures
//! stop it at once. MISP has no transactions: what was pushed before a failure stays, which is
//! harmless, since uuids are deterministic and the next run converges on the same events.

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;

use super::config::MispTarget;
use super::service::{Added, Edited, MispService};
use super::upsert::{self, EditPlan, Expected, Verification};
use crate::misp::builder::EventBuilder;
use crate::misp::config::MispOptions;
use crate::misp::event::Event;
use crate::misp::uuid::event_uuid;
use crate::push::{Failures, Link, PushError, begun};
use crate::{Sink, SinkError, SinkReport};

const NAME: &str = "MISP";

/// Fresh copies read for one event while MISP refuses the edit as not newer.
const EDIT_ROUNDS: u32 = 3;

/// What became of the events pushed so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventTally {
    pub added: u64,
    pub edited: u64,
    pub unchanged: u64,
    pub refused: u64,
    /// Events whose attributes were all retracted: extension events of an earlier, larger export
    /// and events of profiles that vanished from the source.
    pub retired: u64,
    /// Attributes the instance holds as built (the sink's `objects`).
    pub attributes: u64,
    /// Attributes sent in adds and edits (new or changed).
    pub sent: u64,
    /// Attributes marked deleted because their indicator left the profile (or the profile left
    /// the source).
    pub retracted: u64,
    /// Attributes of events the instance refused (all are logged).
    pub failures: Failures,
}

impl EventTally {
    fn fail(&mut self, event: &str, reason: &str, count: u64) {
        self.failures
            .add(count, || format!("event {event}: {reason}"));
        tracing::warn!(event, "MISP: {reason}");
    }

    fn record(&mut self, event: &Event, verification: &Verification) {
        self.attributes += verification.present;
        self.retracted += verification.retracted;
        for problem in &verification.problems {
            self.fail(&describe(event), &problem.to_string(), 1);
        }
    }
}

fn describe(event: &Event) -> String {
    format!("{} ({})", event.uuid, event.info)
}

pub struct MispRestSink {
    target: MispTarget,
    builder: EventBuilder,
    link: Option<Link<MispService>>,
    tally: EventTally,
}

impl MispRestSink {
    /// A sink for a validated target; nothing is sent before `begin`.
    pub fn new(target: MispTarget, options: MispOptions) -> Result<Self, SinkError> {
        Ok(MispRestSink {
            target,
            builder: EventBuilder::new(options)?,
            link: None,
            tally: EventTally::default(),
        })
    }

    fn start(&mut self) -> Result<(), PushError> {
        let link = Link::new(NAME, MispService::new(&self.target)?)?;
        link.block_on(connect(&link.service, &self.target))?;
        self.link = Some(link);
        Ok(())
    }

    fn push(&mut self, event: Event) -> Result<(), PushError> {
        let link = begun(&self.link, NAME)?;
        link.block_on(upsert_event(&link.service, &event, &mut self.tally))?;
        if self.tally.failures.too_many() {
            return Err(PushError::Refused(self.failures_text("giving up")));
        }
        Ok(())
    }

    /// Extension events beyond a profile's last part hold what an earlier, larger export put
    /// there: their attributes left the profile, so they are retracted.
    fn retire_stale_extensions(&mut self) -> Result<(), PushError> {
        let link = begun(&self.link, NAME)?;
        for (profile_id, parts) in self.builder.parts() {
            for part in parts + 1.. {
                let uuid = event_uuid(&profile_id, part).to_string();
                let found = link.block_on(retire(
                    &link.service,
                    &uuid,
                    STALE_EXTENSION,
                    &mut self.tally,
                ))?;
                if !found {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Every event of a profile that vanished from the source (known from the state store's
    /// revocations), from the main event on while the instance has them: their attributes are
    /// retracted. The edit carries no header, tags or report, so the instance keeps its own
    /// (this run knows nothing else of a profile it did not list).
    fn retire_vanished(&mut self) -> Result<(), PushError> {
        let link = begun(&self.link, NAME)?;
        for profile_id in self.builder.vanished() {
            let before = (self.tally.retired, self.tally.retracted);
            for part in 1.. {
                let uuid = event_uuid(&profile_id, part).to_string();
                let found = link.block_on(retire(
                    &link.service,
                    &uuid,
                    VANISHED_PROFILE,
                    &mut self.tally,
                ))?;
                if !found {
                    break;
                }
            }
            if self.tally.retired > before.0 {
                tracing::debug!(
                    profile = %profile_id,
                    events = self.tally.retired - before.0,
                    retracted = self.tally.retracted - before.1,
                    "MISP: the events of a profile the source no longer lists were retired"
                );
            }
            if self.tally.failures.too_many() {
                return Err(PushError::Refused(self.failures_text("giving up")));
            }
        }
        Ok(())
    }

    fn failures_text(&self, verdict: &str) -> String {
        let failures = &self.tally.failures;
        format!(
            "{verdict}: {} object(s) not delivered to {}: {}",
            failures.count,
            self.target.endpoint.url,
            failures.named()
        )
    }
}

/// Adds or edits one event and accounts for every attribute of it.
async fn upsert_event(
    service: &MispService,
    event: &Event,
    tally: &mut EventTally,
) -> Result<(), PushError> {
    let mut exists = service.exists(&event.uuid).await?;
    for _ in 0..EDIT_ROUNDS {
        if !exists {
            let body = upsert::add_body(event)
                .map_err(|e| PushError::Refused(format!("cannot serialize an event: {e}")))?;
            match service.add(&body).await? {
                Added::Stored(answer) => {
                    tally.added += 1;
                    tally.sent += event.attributes.len() as u64;
                    tracing::debug!(event = %event.uuid, "MISP: event added");
                    tally.record(event, &upsert::verify(Expected::event(event, &[]), &answer));
                    return Ok(());
                }
                Added::Exists { location } => {
                    tracing::debug!(event = %event.uuid, %location, "MISP: the event exists already; editing it");
                }
                Added::Refused(reason) => {
                    tally.refused += 1;
                    tally.fail(
                        &describe(event),
                        &format!("refused: {reason}"),
                        event.attributes.len().max(1) as u64,
                    );
                    return Ok(());
                }
            }
        }
        let Some(stored) = service.view(&event.uuid).await? else {
            exists = false;
            continue;
        };
        let plan = upsert::plan_edit(event, &stored);
        if plan.is_noop() {
            tally.unchanged += 1;
            tally.record(event, &upsert::verify(Expected::event(event, &[]), &stored));
            return Ok(());
        }
        match edit(service, event, &plan).await? {
            Edited::Stored(answer) => {
                tally.edited += 1;
                tally.sent += plan.send.len() as u64;
                tracing::debug!(
                    event = %event.uuid,
                    sent = plan.send.len(),
                    retracted = plan.deletions.len(),
                    unchanged = plan.unchanged,
                    "MISP: event edited"
                );
                tally.record(
                    event,
                    &upsert::verify(Expected::event(event, &plan.deletions), &answer),
                );
                return Ok(());
            }
            Edited::NotNewer => {
                tracing::debug!(event = %event.uuid, "MISP: edit refused as not newer; reading the event again");
                exists = true;
            }
            Edited::Refused(reason) => {
                tally.refused += 1;
                tally.fail(
                    &describe(event),
                    &format!("edit refused: {reason}"),
                    event.attributes.len().max(1) as u64,
                );
                return Ok(());
            }
        }
    }
    tally.refused += 1;
    tally.fail(
        &describe(event),
        &format!(
            "the instance refused the edit {EDIT_ROUNDS} times as not newer than its copy \
             (another writer keeps editing the event?)"
        ),
        event.attributes.len().max(1) as u64,
    );
    Ok(())
}

/// Sends an edit; when the answer lacks the attributes (a metadata-only answer), the event is
/// read again so that the verification sees what the instance holds.
async fn edit(service: &MispService, event: &Event, plan: &EditPlan) -> Result<Edited, PushError> {
    let body = upsert::edit_body(&event.uuid, Some(event), plan)
        .map_err(|e| PushError::Refused(format!("cannot serialize an edit: {e}")))?;
    match service.edit(&event.uuid, &body).await? {
        Edited::Stored(answer) if answer.attributes.is_empty() && !event.attributes.is_empty() => {
            Ok(Edited::Stored(match service.view(&event.uuid).await? {
                Some(copy) => Box::new(copy),
                None => answer,
            }))
        }
        other => Ok(other),
    }
}

/// Why an event is retired, for the failure that names a refused retirement.
const STALE_EXTENSION: &str = "this extension event of an earlier export lists indicators that \
                               left the profile, and the instance refused to mark them deleted";
const VANISHED_PROFILE: &str = "this event's profile is no longer listed by the source, and the \
                                instance refused to mark its attributes deleted";

/// Retracts the attributes of an event that no longer exists in the export (`why` names the
/// reason in a failure). Returns whether the instance had the event.
async fn retire(
    service: &MispService,
    uuid: &str,
    why: &str,
    tally: &mut EventTally,
) -> Result<bool, PushError> {
    if !service.exists(uuid).await? {
        return Ok(false);
    }
    let Some(stored) = service.view(uuid).await? else {
        return Ok(false);
    };
    let plan = upsert::plan_retire(&stored);
    if plan.deletions.is_empty() {
        return Ok(true);
    }
    let body = upsert::edit_body(uuid, None, &plan)
        .map_err(|e| PushError::Refused(format!("cannot serialize an edit: {e}")))?;
    let label = format!("{uuid} ({})", stored.info);
    match service.edit(uuid, &body).await? {
        Edited::Stored(answer) => {
            tally.retired += 1;
            let check = upsert::verify(
                Expected {
                    attributes: &[],
                    deletions: &plan.deletions,
                    tags: &[],
                    reports: &[],
                },
                &answer,
            );
            tally.retracted += check.retracted;
            for problem in &check.problems {
                tally.fail(&label, &problem.to_string(), 1);
            }
        }
        Edited::NotNewer => tally.fail(&label, why, plan.deletions.len() as u64),
        Edited::Refused(reason) => tally.fail(
            &label,
            &format!("{why}: {reason}"),
            plan.deletions.len() as u64,
        ),
    }
    Ok(true)
}

/// Reads the key's user and checks that its role can do what a push needs.
async fn connect(service: &MispService, target: &MispTarget) -> Result<(), PushError> {
    let me = service.me().await?;
    let admin = me.perm_site_admin;
    if !me.perm_add && !admin {
        return Err(PushError::Refused(format!(
            "the MISP user {} (role '{}') may not create events: its role needs perm_add",
            me.email, me.role
        )));
    }
    if !me.perm_modify && !me.perm_modify_org && !admin {
        return Err(PushError::Refused(format!(
            "the MISP user {} (role '{}') may not edit events, so a re-run could not update \
             them: its role needs perm_modify (or perm_modify_org)",
            me.email, me.role
        )));
    }
    if !me.perm_tagger && !admin {
        return Err(PushError::Refused(format!(
            "the MISP user {} (role '{}') may not tag events, so every event would lose its TLP \
             and galaxy tags: its role needs perm_tagger",
            me.email, me.role
        )));
    }
    if !me.perm_tag_editor && !admin {
        tracing::warn!(
            user = %me.email,
            role = %me.role,
            "MISP: the role lacks perm_tag_editor: tags the instance does not know yet (a TLP \
             tag of a taxonomy not enabled, a galaxy tag of an unknown cluster) will not be \
             attached, and those events will be reported as failed"
        );
    }
    if !me.perm_sync {
        tracing::info!(
            organisation = %me.organisation,
            "MISP: events are created by the key's organisation '{}' (MISP ignores Orgc for \
             users without perm_sync)",
            me.organisation
        );
    }
    tracing::info!(
        url = %target.endpoint.url,
        user = %me.email,
        role = %me.role,
        "MISP: pushing to {} as {} (role '{}')",
        target.endpoint.url,
        me.email,
        me.role
    );
    Ok(())
}

impl Sink for MispRestSink {
    fn begin(&mut self, _preamble: &[EncodedObject]) -> Result<(), SinkError> {
        self.start().map_err(|e| e.in_sink(NAME))
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        for built in self.builder.add(record)? {
            self.push(built).map_err(|e| e.in_sink(NAME))?;
        }
        Ok(())
    }

    fn delivery(&self) -> crate::Delivery {
        crate::Delivery::Snapshot
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReport, SinkError> {
        if let Some(built) = self.builder.finish()? {
            self.push(built).map_err(|e| e.in_sink(NAME))?;
        }
        self.retire_stale_extensions()
            .and_then(|()| self.retire_vanished())
            .map_err(|e| e.in_sink(NAME))?;
        let t = &self.tally;
        tracing::info!(
            url = %self.target.endpoint.url,
            added = t.added,
            edited = t.edited,
            unchanged = t.unchanged,
            refused = t.refused,
            retired = t.retired,
            attributes = t.attributes,
            retracted = t.retracted,
            failed = t.failures.count,
            "MISP: {} event(s) added, {} edited, {} unchanged, {} refused, {} retired; {} \
             attribute(s) in place ({} sent), {} marked deleted, {} failed",
            t.added,
            t.edited,
            t.unchanged,
            t.refused,
            t.retired,
            t.attributes,
            t.sent,
            t.retracted,
            t.failures.count
        );
        Ok(SinkReport {
            objects: t.attributes,
            files: Vec::new(),
            failed: t.failures.count,
            failures: t.failures.listed.clone(),
        })
    }
}
