//! The export run: one source, one mapping, many sinks, joined by bounded channels.
//!
//! ```text
//! source (task)            ──records──▶ mapper (blocking thread) ──Arc<Mapped>──▶ sink 1 (thread)
//!                                                                          └────▶ sink 2 (thread) …
//! ```
//! Every channel is bounded, so memory is set by channel capacities, not by the size of the export,
//! and the slowest sink sets the pace. A sink that fails stops receiving; the others go on, and the
//! run reports the failure.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use ctiport_fetch::Source;
use ctiport_model::record::{Mapped, SourceRecord};
use ctiport_model::stix::EncodedObject;
use ctiport_sink::{Sink, SinkError, SinkReport};
use ctiport_transform::{Decision, Filter, Mapper, Outcome};
use tokio::sync::mpsc;

use crate::progress::Progress;
use crate::sinks::SinkSpec;
use crate::summary::{SinkStatus, SinkSummary, Summary};

const RECORD_CHANNEL: usize = 1024;
const SINK_CHANNEL: usize = 256;

/// A configured export, ready to run. Building it validates everything (usage errors, exit 2);
/// running it can only fail at run time (exit 1) or be partial (exit 3).
pub struct Export {
    pub source: Source,
    /// The export filters, applied before the mapper so that what they leave out creates nothing.
    pub filter: Filter,
    pub mapper: Mapper,
    pub sinks: Vec<(String, Box<dyn Sink>)>,
    pub progress: Progress,
}

impl Export {
    pub async fn run(self) -> Result<Summary> {
        let started = Instant::now();
        let Export {
            source,
            mut filter,
            mut mapper,
            sinks,
            progress,
        } = self;
        let preamble: Arc<[EncodedObject]> = mapper.preamble().into();

        let (record_tx, mut record_rx) = mpsc::channel::<SourceRecord>(RECORD_CHANNEL);
        let source_task = tokio::spawn(source.run(record_tx));

        let mut sink_inputs = Vec::new();
        let mut sink_tasks = Vec::new();
        for (name, sink) in sinks {
            let (tx, rx) = mpsc::channel::<SinkMessage>(SINK_CHANNEL);
            let preamble = preamble.clone();
            sink_inputs.push((name.clone(), tx));
            sink_tasks.push((
                name,
                tokio::task::spawn_blocking(move || drive_sink(sink, &preamble, rx)),
            ));
        }

        let mapping_task = tokio::task::spawn_blocking(move || {
            let mut summary = Summary {
                objects: preamble.len() as u64,
                ..Summary::default()
            };
            while let Some(record) = record_rx.blocking_recv() {
                let outcome = match filter.keeps(&record) {
                    Decision::Keep => mapper.map(record),
                    Decision::Drop(filtered) => Outcome::Filtered(filtered),
                };
                match outcome {
                    Outcome::Mapped(mapped) => {
                        match &mapped {
                            Mapped::Profile(_) => summary.profiles += 1,
                            Mapped::Indicator(_) => summary.indicators += 1,
                        }
                        summary.objects +=
                            mapped.objects().iter().filter(|e| e.first).count() as u64;
                        let mapped = Arc::new(mapped);
                        // A failed sink has dropped its receiver; it is reported when joined.
                        sink_inputs.retain(|(_, tx)| {
                            tx.blocking_send(SinkMessage::Record(mapped.clone()))
                                .is_ok()
                        });
                    }
                    Outcome::Rejected(rejection) => summary.reject(rejection),
                    Outcome::Skipped(skipped) => summary.skip(skipped),
                    Outcome::Filtered(filtered) => summary.filter(filtered),
                }
                progress.update(&summary);
            }
            progress.finish();
            if filter.unscored_hosts_kept() > 0 {
                tracing::warn!(
                    "--min-reputation: {} host indicator(s) had no reputation score (not looked up \
                     within --enrich-max, or no reputation record) and were kept",
                    filter.unscored_hosts_kept()
                );
            }
            (summary, sink_inputs)
        });

        let source_result = source_task.await.context("the source task panicked")?;
        let (mut summary, sink_inputs) =
            mapping_task.await.context("the mapping thread panicked")?;
        // Sinks commit only a complete run; after a source failure they discard what they wrote.
        match &source_result {
            Ok(report) => {
                for (_, input) in &sink_inputs {
                    let _ = input.send(SinkMessage::Commit).await;
                }
                if let Some(captured) = &report.captured {
                    summary.sinks.push(SinkSummary {
                        sink: format!("dump:{}", captured.path.display()),
                        indicators: captured.indicators,
                        objects: captured.records,
                        status: SinkStatus::Ok,
                        failed: 0,
                        files: vec![captured.path.display().to_string()],
                        error: None,
                    });
                }
            }
            Err(error) => {
                tracing::error!("the source failed: {error}");
                summary.source_error = Some(error.to_string());
            }
        }
        drop(sink_inputs);
        for (name, task) in sink_tasks {
            let result = task.await.context("a sink thread panicked")?;
            summary.sinks.push(match result {
                Ok((report, indicators)) if report.failed > 0 => {
                    // Delivered in part: `objects` says what arrived, the error what did not.
                    let error = not_delivered(&report);
                    tracing::error!(sink = %name, "sink failed: {error}");
                    SinkSummary {
                        sink: name,
                        indicators,
                        objects: report.objects,
                        status: SinkStatus::Failed,
                        failed: report.failed,
                        files: report.files,
                        error: Some(error),
                    }
                }
                Ok((report, indicators)) => SinkSummary {
                    sink: name,
                    indicators,
                    objects: report.objects,
                    status: SinkStatus::Ok,
                    failed: 0,
                    files: report.files,
                    error: None,
                },
                Err(error) => {
                    tracing::error!(sink = %name, "sink failed: {error}");
                    SinkSummary {
                        sink: name,
                        indicators: 0,
                        objects: 0,
                        status: SinkStatus::Failed,
                        failed: 0,
                        files: Vec::new(),
                        error: Some(error.to_string()),
                    }
                }
            });
        }
        summary.duration_seconds = started.elapsed().as_secs_f64();
        summary.decide_exit_code();
        Ok(summary)
    }
}

/// The error of a sink that delivered all but `report.failed` objects.
fn not_delivered(report: &SinkReport) -> String {
    let more = report.failed.saturating_sub(report.failures.len() as u64);
    let more = if more > 0 {
        format!("; … and {more} more")
    } else {
        String::new()
    };
    format!(
        "{} object(s) not delivered: {}{more}",
        report.failed,
        report.failures.join("; ")
    )
}

/// What a sink receives: the records, then the word to commit.
enum SinkMessage {
    Record(Arc<Mapped>),
    Commit,
}

/// Feeds one sink. Returns its report and the number of indicator records it took in, which
/// the summary shows per sink so that one run's sinks can be compared on the same unit.
fn drive_sink(
    mut sink: Box<dyn Sink>,
    preamble: &[EncodedObject],
    mut input: mpsc::Receiver<SinkMessage>,
) -> Result<(SinkReport, u64), SinkError> {
    sink.begin(preamble)?;
    let mut indicators = 0u64;
    while let Some(message) = input.blocking_recv() {
        match message {
            SinkMessage::Record(record) => {
                sink.write(&record)?;
                indicators += u64::from(matches!(*record, Mapped::Indicator(_)));
            }
            SinkMessage::Commit => return Ok((sink.finish()?, indicators)),
        }
    }
    // Dropping the sink discards its temporary files.
    Err(SinkError::Other(
        "not written: the source failed, so the output would be incomplete".into(),
    ))
}

/// Opens every `--to` sink; any failure here is a configuration error.
pub fn open_sinks(
    specs: &[(String, crate::sinks::SinkSettings)],
) -> Result<Vec<(String, Box<dyn Sink>)>, String> {
    let mut seen = std::collections::HashSet::new();
    specs
        .iter()
        .map(|(text, settings)| {
            if !seen.insert(text.clone()) {
                return Err(format!(
                    "sink '{}' is given twice",
                    crate::sinks::redact_userinfo(text)
                ));
            }
            let spec = SinkSpec::parse(text)?;
            let sink = spec
                .open(settings)
                .map_err(|e| format!("cannot open sink '{text}': {e}"))?;
            Ok((text.clone(), sink))
        })
        .collect()
}
