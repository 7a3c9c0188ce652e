//! The export run: one source, one mapping, many sinks, joined by bounded channels.
//!
//! ```text
//! source (task)            ──records──▶ mapper (blocking thread) ──Arc<Mapped>──▶ sink 1 (thread)
//!                                                                          └────▶ sink 2 (thread) …
//! ```
//! Every channel is bounded, so memory is set by channel capacities, not by the size of the export,
//! and the slowest sink sets the pace. A sink that fails stops receiving; the others go on, and the
//! run reports the failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use ctiport_fetch::Source;
use ctiport_model::record::{Emitted, Mapped, SourceRecord, Version};
use ctiport_model::stix::EncodedObject;
use ctiport_model::timestamp::Timestamp;
use ctiport_sink::{Delivery, Sink, SinkError, SinkReport};
use ctiport_transform::{Decision, Filter, Mapper, Outcome};
use tokio::sync::mpsc;

use crate::progress::Progress;
use crate::state::delivery::{DeltaCounts, Position, Selector};
use crate::state::{self, Coverage, Store, Versioner, crash_point};
use crate::summary::{SinkStatus, SinkSummary, StateSummary, Summary};

const RECORD_CHANNEL: usize = 1024;
const SINK_CHANNEL: usize = 256;

/// A configured export, ready to run. Building it validates everything (usage errors, exit 2);
/// running it can only fail at run time (exit 1) or be partial (exit 3).
pub struct Export {
    pub source: Source,
    /// The export filters, applied before the mapper so that what they leave out creates nothing.
    pub filter: Filter,
    pub mapper: Mapper,
    pub sinks: Vec<NamedSink>,
    pub progress: Progress,
    /// `--state`: the store that makes the run incremental.
    pub state: Option<StateOptions>,
}

/// The state store of a run and how it is used.
pub struct StateOptions {
    pub path: PathBuf,
    pub coverage: Coverage,
    /// `--full`: send every sink the current state, whatever it acknowledged.
    pub full: bool,
}

/// A sink and the `--to` text that names it (in logs, the summary and the state store).
pub type NamedSink = (String, Box<dyn Sink>);

type SinkInputs = Vec<(String, mpsc::Sender<SinkMessage>)>;

impl Export {
    pub async fn run(self) -> Result<Summary> {
        let started = Instant::now();
        let Export {
            source,
            mut filter,
            mut mapper,
            sinks,
            progress,
            state,
        } = self;

        // The store is read before anything is sent: the run's number, the preamble's versions
        // and what each sink acknowledged.
        let (mut versioner, state_file, full) = match state {
            Some(options) => {
                let describe = |e: String| anyhow!("state file {}: {e}", options.path.display());
                let mut store = Store::open(&options.path).map_err(|e| anyhow!(e))?;
                let run = store
                    .begin_run(&Timestamp::now().to_string())
                    .map_err(describe)?;
                let versioner = Versioner::new(store, run, options.coverage);
                (Some(versioner), Some(options.path), options.full)
            }
            None => (None, None, false),
        };
        let preamble: Arc<[Emitted]> = match &mut versioner {
            Some(versioner) => versioner
                .version_preamble(mapper.preamble())
                .map_err(|e| anyhow!("state store: {e}"))?,
            None => mapper
                .preamble()
                .into_iter()
                .map(|object| Emitted {
                    object,
                    first: true,
                    version: Version::default(),
                })
                .collect(),
        }
        .into();
        let mut positions: Vec<Position> = Vec::new();
        for (name, _) in &sinks {
            let acked = match &versioner {
                Some(versioner) => versioner
                    .acked_run(name)
                    .map_err(|e| anyhow!("state store: {e}"))?,
                None => None,
            };
            positions.push(Position {
                stateful: versioner.is_some(),
                acked,
                full,
            });
        }
        // Revocations go to the sinks that acknowledged an earlier run; a new sink has none.
        let revocations_after = positions.iter().filter_map(|p| p.acked).min();
        let acked_before: Vec<Option<u32>> = positions.iter().map(|p| p.acked).collect();

        let (record_tx, mut record_rx) = mpsc::channel::<SourceRecord>(RECORD_CHANNEL);
        let source_task = tokio::spawn(source.run(record_tx));

        let mut sink_inputs: SinkInputs = Vec::new();
        let mut sink_tasks = Vec::new();
        for ((name, sink), position) in sinks.into_iter().zip(positions) {
            let (tx, rx) = mpsc::channel::<SinkMessage>(SINK_CHANNEL);
            let preamble = preamble.clone();
            sink_inputs.push((name.clone(), tx));
            sink_tasks.push((
                name,
                tokio::task::spawn_blocking(move || drive_sink(sink, &preamble, position, rx)),
            ));
        }

        let preamble_objects = preamble.len() as u64;
        let mapping_task = tokio::task::spawn_blocking(move || {
            let mut summary = Summary {
                objects: preamble_objects,
                ..Summary::default()
            };
            let mut store_error = None;
            while let Some(record) = record_rx.blocking_recv() {
                let outcome = match filter.keeps(&record) {
                    Decision::Keep => mapper.map(record),
                    Decision::Drop(filtered) => Outcome::Filtered(filtered),
                };
                match outcome {
                    Outcome::Mapped(mut mapped) => {
                        match &mapped {
                            Mapped::Profile(_) => summary.profiles += 1,
                            Mapped::Indicator(_) => summary.indicators += 1,
                            Mapped::Revoked(_) => {}
                        }
                        if let Some(versioner) = &mut versioner {
                            if let Err(error) = versioner.version(&mut mapped) {
                                store_error = Some(error);
                                break;
                            }
                            if summary.profiles == 3 && matches!(mapped, Mapped::Profile(_)) {
                                versioner.crash_point_committed("mapping");
                            }
                        }
                        summary.objects +=
                            mapped.objects().iter().filter(|e| e.first).count() as u64;
                        send(&mut sink_inputs, Arc::new(mapped));
                    }
                    Outcome::Rejected(rejection) => {
                        if let Some(versioner) = &mut versioner
                            && let Err(error) = versioner.rejected(rejection.record)
                        {
                            store_error = Some(error);
                            break;
                        }
                        summary.reject(rejection)
                    }
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
            (summary, sink_inputs, versioner, store_error)
        });

        let source_result = source_task.await.context("the source task panicked")?;
        let (mut summary, sink_inputs, versioner, store_error) =
            mapping_task.await.context("the mapping thread panicked")?;
        if let Some(error) = store_error {
            // Sinks see their inputs close without a commit and discard what they wrote.
            drop(sink_inputs);
            return Err(anyhow!("state store: {error}"));
        }
        // With a complete source, the store revokes what the source stopped listing and the sinks
        // that lag get the revocations they miss.
        let (sink_inputs, versioner) = tokio::task::spawn_blocking({
            let complete = source_result.is_ok();
            move || finish_versions(versioner, sink_inputs, complete, revocations_after)
        })
        .await
        .context("the state thread panicked")?;
        let (sink_inputs, versioner) = (sink_inputs, versioner?);
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
                        delta: None,
                        acknowledged: None,
                    });
                }
            }
            Err(error) => {
                tracing::error!("the source failed: {error}");
                summary.source_error = Some(error.to_string());
            }
        }
        drop(sink_inputs);
        let mut delivered = Vec::new();
        for ((name, task), acked_before) in sink_tasks.into_iter().zip(acked_before) {
            let result = task.await.context("a sink thread panicked")?;
            let sink_summary = summarize_sink(name, result);
            if sink_summary.status == SinkStatus::Ok && source_result.is_ok() {
                delivered.push((summary.sinks.len(), acked_before));
            }
            summary.sinks.push(sink_summary);
        }
        if let Some((versioner, held)) = versioner {
            crash_point("before-ack");
            let run = versioner.run();
            summary.state = Some(StateSummary {
                file: state_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                run,
                versions: versioner.counts.clone(),
                revocation_held: held,
                full,
            });
            let now = Timestamp::now().to_string();
            let mut acknowledge = Vec::new();
            for (index, acked_before) in delivered {
                let sink = &mut summary.sinks[index];
                // A run that did not list everything (filters, held revocations) may not have
                // carried versions an earlier, interrupted run made: the sink then keeps its
                // position and gets them again, unchanged, rather than miss them.
                let may_lack = versioner
                    .may_lack_versions(acked_before)
                    .map_err(|e| anyhow!("state store: {e}"))?;
                if may_lack {
                    tracing::warn!(
                        sink = %sink.sink,
                        "{}: versions made by an interrupted run may not be in this run's \
                         listing; its position stays, and they are sent again with the next \
                         complete run",
                        sink.sink
                    );
                    sink.acknowledged = Some(false);
                } else {
                    acknowledge.push(index);
                }
            }
            let mut store = versioner.into_store();
            for index in acknowledge {
                let sink = &mut summary.sinks[index];
                store.acknowledge(&sink.sink, run, &now).map_err(|e| {
                    anyhow!("state store: recording what {} received: {e}", sink.sink)
                })?;
                sink.acknowledged = Some(true);
            }
            let status = if source_result.is_ok() {
                "finished"
            } else {
                "failed"
            };
            store
                .finish_run(run, &now, status)
                .map_err(|e| anyhow!("state store: {e}"))?;
        }
        summary.duration_seconds = started.elapsed().as_secs_f64();
        summary.decide_exit_code();
        Ok(summary)
    }
}

/// Hands a record to every sink still running; a failed sink has dropped its receiver and is
/// reported when joined.
fn send(sink_inputs: &mut SinkInputs, record: Arc<Mapped>) {
    sink_inputs.retain(|(_, tx)| {
        tx.blocking_send(SinkMessage::Record(record.clone()))
            .is_ok()
    });
}

/// Ends the store's part of the mapping: revocations, then the revoked versions each lagging
/// sink has not acknowledged. Returns the versioner with why revocation was held back, if it was.
#[allow(clippy::type_complexity)]
fn finish_versions(
    versioner: Option<Versioner>,
    mut sink_inputs: SinkInputs,
    source_complete: bool,
    revocations_after: Option<u32>,
) -> (
    SinkInputs,
    Result<Option<(Versioner, state::versioner::Held)>>,
) {
    let Some(mut versioner) = versioner else {
        return (sink_inputs, Ok(None));
    };
    let result = (|| {
        let held = versioner.finish(source_complete)?;
        if source_complete && let Some(after) = revocations_after {
            versioner.revocations_after(after, |revocation| {
                send(&mut sink_inputs, Arc::new(revocation));
                Ok(())
            })?;
        }
        Ok::<_, String>(held)
    })();
    match result {
        Ok(held) => (sink_inputs, Ok(Some((versioner, held)))),
        Err(error) => (sink_inputs, Err(anyhow!("state store: {error}"))),
    }
}

/// Before the store records it, a sink with a state store has not acknowledged the run.
fn delta_known(delta: &Option<DeltaCounts>) -> Option<bool> {
    delta.as_ref().map(|_| false)
}

/// One sink's line of the summary.
fn summarize_sink(
    name: String,
    result: Result<(SinkReport, u64, Option<DeltaCounts>), SinkError>,
) -> SinkSummary {
    match result {
        Ok((report, indicators, delta)) if report.failed > 0 => {
            let acknowledged = delta_known(&delta);
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
                delta,
                acknowledged,
            }
        }
        Ok((report, indicators, delta)) => SinkSummary {
            acknowledged: delta_known(&delta),
            sink: name,
            indicators,
            objects: report.objects,
            status: SinkStatus::Ok,
            failed: 0,
            files: report.files,
            error: None,
            delta,
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
                delta: None,
                acknowledged: None,
            }
        }
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

/// Feeds one sink what it has not acknowledged. Returns its report, the number of indicator
/// records it took in (the summary shows it per sink so that one run's sinks can be compared on the
/// same unit) and, with a state store, what was new to it.
fn drive_sink(
    mut sink: Box<dyn Sink>,
    preamble: &[Emitted],
    position: Position,
    mut input: mpsc::Receiver<SinkMessage>,
) -> Result<(SinkReport, u64, Option<DeltaCounts>), SinkError> {
    let mut selector = Selector {
        position,
        delivery: sink.delivery(),
        counts: DeltaCounts::default(),
    };
    let preamble_objects: Vec<EncodedObject> = preamble.iter().map(|e| e.object.clone()).collect();
    sink.acknowledged(position.acked);
    // A sink that takes changes begins only once it has one, so that a run with nothing new
    // writes nothing but an empty output; the last profile record is kept as context.
    let mut begun = false;
    if selector.preamble_news(preamble) || selector.delivery == Delivery::Snapshot {
        sink.begin(&preamble_objects)?;
        begun = true;
    }
    let mut context: Option<Arc<Mapped>> = None;
    let mut indicators = 0u64;
    while let Some(message) = input.blocking_recv() {
        match message {
            SinkMessage::Record(record) => {
                let Some(view) = selector.view(&record) else {
                    continue;
                };
                let news = Selector::carries_news(&view);
                if !begun {
                    if !news {
                        context = Some(view);
                        continue;
                    }
                    sink.begin(&preamble_objects)?;
                    begun = true;
                    if let Some(context) = context.take() {
                        sink.write(&context)?;
                    }
                }
                sink.write(&view)?;
                let counted = news || selector.delivery == Delivery::Snapshot;
                indicators += u64::from(counted && matches!(*view, Mapped::Indicator(_)));
            }
            SinkMessage::Commit => {
                if !begun {
                    sink.begin(&[])?;
                }
                crash_point("sinks-written");
                let delta = position.stateful.then_some(selector.counts);
                return Ok((sink.finish()?, indicators, delta));
            }
        }
    }
    // Dropping the sink discards its temporary files.
    Err(SinkError::Other(
        "not written: the source failed, so the output would be incomplete".into(),
    ))
}
