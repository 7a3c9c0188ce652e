//! The driver: objects arrive with the records, are packed into envelopes, and each full envelope
//! is delivered at once, so memory holds one envelope whatever the size of the export.
//!
//! TAXII has no transactions: a run that fails half-way leaves the envelopes delivered so far in
//! the collection. That is harmless, because ids and `modified` are deterministic: the next run
//! pushes the same objects again and they are recognized as already present.

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;

use super::config::TaxiiTarget;
use super::delivery::{Courier, ObjectTally};
use super::envelope::{Envelope, EnvelopeLimits, Packer};
use super::service::TaxiiService;
use crate::push::{Link, PushError, begun, not_begun};
use crate::{Sink, SinkError, SinkReport};

const NAME: &str = "TAXII";

pub struct TaxiiSink {
    target: TaxiiTarget,
    link: Option<Link<TaxiiService>>,
    /// Made by `begin`, under the API root's `max_content_length`.
    packer: Option<Packer>,
    /// Whether the collection may be read (`begin` asks).
    can_read: bool,
    tally: ObjectTally,
}

impl TaxiiSink {
    /// A sink for a validated target; nothing is sent before `begin`.
    pub fn new(target: TaxiiTarget) -> Self {
        TaxiiSink {
            target,
            link: None,
            packer: None,
            can_read: false,
            tally: ObjectTally::default(),
        }
    }

    fn start(&mut self, preamble: &[EncodedObject]) -> Result<(), PushError> {
        let link = Link::new(NAME, TaxiiService::new(&self.target)?)?;
        let (limits, can_read) = link.block_on(connect(&link.service, &self.target))?;
        self.link = Some(link);
        self.packer = Some(Packer::new(limits));
        self.can_read = can_read;
        // The producer identity and the marking definition go first: everything refers to them.
        preamble.iter().try_for_each(|object| self.push(object))
    }

    fn push(&mut self, object: &EncodedObject) -> Result<(), PushError> {
        let packer = self.packer.as_mut().ok_or_else(|| not_begun(NAME))?;
        if let Some(envelope) = packer.push(object.clone())? {
            self.deliver(envelope)?;
        }
        Ok(())
    }

    fn deliver(&mut self, envelope: Envelope) -> Result<(), PushError> {
        let link = begun(&self.link, NAME)?;
        let courier = Courier {
            service: &link.service,
            can_read: self.can_read,
            status_timeout: self.target.status_timeout,
        };
        link.block_on(courier.deliver(envelope, &mut self.tally))?;
        if self.tally.failures.too_many() {
            return Err(self.failures_error("giving up"));
        }
        Ok(())
    }

    fn end(&mut self) -> Result<SinkReport, PushError> {
        if let Some(envelope) = self.packer.as_mut().ok_or_else(|| not_begun(NAME))?.flush() {
            self.deliver(envelope)?;
        }
        if self.tally.failures.count > 0 {
            return Err(self.failures_error("the push is incomplete"));
        }
        let t = &self.tally;
        tracing::info!(
            collection = %self.target.collection.url,
            envelopes = t.envelopes,
            stored = t.stored,
            already_present = t.present,
            "TAXII: {} objects in {} envelope(s): {} stored, {} already present",
            t.delivered(),
            t.envelopes,
            t.stored,
            t.present
        );
        Ok(SinkReport {
            objects: t.delivered(),
            ..SinkReport::default()
        })
    }

    fn failures_error(&self, verdict: &str) -> PushError {
        let t = &self.tally;
        PushError::Refused(format!(
            "{verdict}: {} object(s) were not stored in {} ({} stored, {} already present): {}",
            t.failures.count,
            self.target.collection.url,
            t.stored,
            t.present,
            t.failures.named()
        ))
    }
}

/// Reads the API root and the collection and checks that a push can work at all.
async fn connect(
    service: &TaxiiService,
    target: &TaxiiTarget,
) -> Result<(EnvelopeLimits, bool), PushError> {
    let api_root = &target.collection.api_root;
    let root = service.api_root().await?;
    if !root.speaks_taxii_21() {
        return Err(PushError::Refused(format!(
            "the API root {api_root} does not list TAXII 2.1 in its versions ({:?})",
            root.versions
        )));
    }
    let max_content_length = root.max_content_length.ok_or_else(|| {
        PushError::Refused(format!(
            "the API root {api_root} announces no max_content_length"
        ))
    })?;
    let limits = EnvelopeLimits::for_max_content_length(max_content_length)?;
    let collection = service.collection().await?;
    if !collection.can_write {
        return Err(PushError::Refused(format!(
            "the collection '{}' ({}) is read-only for this user (can_write: false): use a \
             writable collection, or ask the server's administrator for write permission",
            collection.title, target.collection.url
        )));
    }
    if !collection.accepts_stix_21() {
        tracing::warn!(
            media_types = ?collection.media_types,
            "TAXII: the collection does not list application/stix+json;version=2.1; pushing anyway"
        );
    }
    tracing::info!(
        collection = %target.collection.url,
        title = %collection.title,
        max_content_length,
        can_read = collection.can_read,
        "TAXII: pushing to collection '{}' (API root '{}')",
        collection.title,
        root.title
    );
    Ok((limits, collection.can_read))
}

impl Sink for TaxiiSink {
    fn begin(&mut self, preamble: &[EncodedObject]) -> Result<(), SinkError> {
        self.start(preamble).map_err(|e| e.in_sink(NAME))
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        record
            .objects()
            .iter()
            .filter(|e| e.first)
            .try_for_each(|emitted| self.push(&emitted.object))
            .map_err(|e| e.in_sink(NAME))
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReport, SinkError> {
        self.end().map_err(|e| e.in_sink(NAME))
    }
}
