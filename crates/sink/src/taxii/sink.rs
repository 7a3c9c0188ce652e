//! The driver: objects arrive with the records, are packed into envelopes, and each full envelope
//! is delivered at once, so memory holds one envelope whatever the size of the export.
//!
//! TAXII has no transactions: a run that fails half-way leaves the envelopes delivered so far in
//! the collection. That is harmless, because ids and `modified` are deterministic: the next run
//! pushes the same objects again and they are recognized as already present.

use ctiport_model::record::Mapped;
use ctiport_model::stix::EncodedObject;
use tokio::runtime::Handle;

use super::config::TaxiiConfig;
use super::delivery::{Delivery, Tally};
use super::envelope::{Envelope, EnvelopeLimits, Packer};
use super::error::TaxiiError;
use super::service::TaxiiService;
use crate::{Sink, SinkError, SinkReport};

/// Per-object failures after which the push stops: past this, the cause is systematic.
const MAX_FAILURES: u64 = 1_000;

pub struct TaxiiSink {
    config: TaxiiConfig,
    link: Option<Link>,
    tally: Tally,
}

/// What `begin` established: the client, the collection's rights and the envelope packer.
struct Link {
    runtime: Handle,
    service: TaxiiService,
    can_read: bool,
    packer: Packer,
}

impl TaxiiSink {
    /// A sink for a validated target; nothing is sent before `begin`.
    pub fn new(config: TaxiiConfig) -> Self {
        TaxiiSink {
            config,
            link: None,
            tally: Tally::default(),
        }
    }

    fn push(&mut self, object: &EncodedObject) -> Result<(), TaxiiError> {
        let link = self.link()?;
        if let Some(envelope) = link.packer.push(object.clone())? {
            self.deliver(envelope)?;
        }
        Ok(())
    }

    fn deliver(&mut self, envelope: Envelope) -> Result<(), TaxiiError> {
        let Some(link) = self.link.as_ref() else {
            return Err(not_begun());
        };
        let delivery = Delivery {
            service: &link.service,
            can_read: link.can_read,
            status_timeout: self.config.status_timeout,
        };
        link.runtime
            .block_on(delivery.deliver(envelope, &mut self.tally))?;
        if self.tally.failed >= MAX_FAILURES {
            return Err(self.failures_error("giving up"));
        }
        Ok(())
    }

    fn link(&mut self) -> Result<&mut Link, TaxiiError> {
        self.link.as_mut().ok_or_else(not_begun)
    }

    fn failures_error(&self, verdict: &str) -> TaxiiError {
        let t = &self.tally;
        let more = t.failed.saturating_sub(t.failures.len() as u64);
        let more = if more > 0 {
            format!("; … and {more} more")
        } else {
            String::new()
        };
        TaxiiError::ObjectsFailed(format!(
            "{verdict}: {} object(s) were not stored in {} ({} stored, {} already present): {}{more}",
            t.failed,
            self.config.collection_url,
            t.stored,
            t.present,
            t.failures.join("; ")
        ))
    }
}

/// Reads the API root and the collection and checks that a push can work at all.
async fn connect(
    service: &TaxiiService,
    config: &TaxiiConfig,
) -> Result<(EnvelopeLimits, bool), TaxiiError> {
    let root = service.api_root().await?;
    if !root.speaks_taxii_21() {
        return Err(TaxiiError::Refused(format!(
            "the API root {} does not list TAXII 2.1 in its versions ({:?})",
            config.api_root, root.versions
        )));
    }
    let max_content_length = root.max_content_length.ok_or_else(|| {
        TaxiiError::Refused(format!(
            "the API root {} announces no max_content_length",
            config.api_root
        ))
    })?;
    let limits = EnvelopeLimits::for_max_content_length(max_content_length)?;
    let collection = service.collection().await?;
    if !collection.can_write {
        return Err(TaxiiError::Refused(format!(
            "the collection '{}' ({}) is read-only for this user (can_write: false): use a \
             writable collection, or ask the server's administrator for write permission",
            collection.title, config.collection_url
        )));
    }
    if !collection.accepts_stix_21() {
        tracing::warn!(
            media_types = ?collection.media_types,
            "TAXII: the collection does not list application/stix+json;version=2.1; pushing anyway"
        );
    }
    tracing::info!(
        collection = %config.collection_url,
        title = %collection.title,
        max_content_length,
        can_read = collection.can_read,
        "TAXII: pushing to collection '{}' (API root '{}')",
        collection.title,
        root.title
    );
    Ok((limits, collection.can_read))
}

fn not_begun() -> TaxiiError {
    TaxiiError::Config("the TAXII sink was used before begin".into())
}

impl Sink for TaxiiSink {
    fn begin(&mut self, preamble: &[EncodedObject]) -> Result<(), SinkError> {
        let runtime = Handle::try_current().map_err(|e| {
            TaxiiError::Config(format!("the TAXII sink needs a tokio runtime: {e}"))
        })?;
        let service = TaxiiService::new(&self.config)?;
        let (limits, can_read) = runtime.block_on(connect(&service, &self.config))?;
        self.link = Some(Link {
            runtime,
            service,
            can_read,
            packer: Packer::new(limits),
        });
        // The producer identity and the marking definition go first: everything refers to them.
        for object in preamble {
            self.push(object)?;
        }
        Ok(())
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        for emitted in record.objects().iter().filter(|e| e.first) {
            self.push(&emitted.object)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<SinkReport, SinkError> {
        if let Some(envelope) = self.link()?.packer.flush() {
            self.deliver(envelope)?;
        }
        if self.tally.failed > 0 {
            return Err(self.failures_error("the push is incomplete").into());
        }
        let t = &self.tally;
        tracing::info!(
            collection = %self.config.collection_url,
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
            files: Vec::new(),
            ..SinkReport::default()
        })
    }
}
