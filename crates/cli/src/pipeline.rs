//! The export run: one source, one mapping, many sinks, joined by bounded channels.
//!
//! ```text
//! source (task)            ──records──▶ mapper (blocking thread) ──Arc<Mapped>──▶ sink 1 (thread)
//!                                                                          └────▶ sink 2 (thread) …
//! ```
//! Every channel is bounded, so memory is set by channel capacities, not by the size of the export,
//! and the slowest sink sets the pace. A sink that fails stops receiving; the others go on, and the
//! run reports the failure.
//!
//! [`Export::run`] wires the steps; the work of each lives in the library crates: the source in
//! `ctiport_fetch`, the mapping in `ctiport_transform`, versions, revocations and what each sink
//! still needs in `ctiport_state`, the writers in `ctiport_sink`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow};
use ctiport_fetch::{RunError, Source, SourceReport};
use ctiport_model::record::{Emitted, Mapped, SourceRecord, Version};
use ctiport_model::stix::EncodedObject;
use ctiport_model::timestamp::Timestamp;
use ctiport_sink::{Delivery, Sink, SinkError, SinkReport};
use ctiport_state::{
    Coverage, CrashPoint, DeltaCounts, Held, Position, Selector, StateError, Store, Versioner,
    crash_point,
};
use ctiport_transform::{Decision, Filter, Mapper, Outcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::progress::Progress;
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

/// A sink's thread, by name: its report, the indicator records it took in and, with a state
/// store, what was new to it.
type SinkTask = (String, JoinHandle<SinkResult>);
type SinkResult = Result<(SinkReport, u64, Option<DeltaCounts>), SinkError>;

/// The state store's part of a running export.
struct RunState {
    versioner: Versioner,
    file: PathBuf,
    full: bool,
}

impl Export {
    pub async fn run(self) -> Result<Summary> {
        let started = Instant::now();
        let Export {
            source,
            filter,
            mapper,
            sinks,
            progress,
            state,
        } = self;

        // The store is read before anything is sent: the run's number, the preamble's versions
        // and what each sink acknowledged.
        let mut state = open_state(state)?;
        let preamble = version_preamble(state.as_mut(), &mapper)?;
        let positions = sink_positions(state.as_ref(), &sinks)?;

        let (record_tx, records) = mpsc::channel::<SourceRecord>(RECORD_CHANNEL);
        let source_task = tokio::spawn(source.run(record_tx));
        let (inputs, sink_tasks) = spawn_sinks(sinks, &positions, &preamble);
        let mapping = Mapping {
            filter,
            mapper,
            state,
            inputs,
            progress,
        };
        let summary = Summary {
            objects: preamble.len() as u64,
            ..Summary::default()
        };
        let mapping_task = tokio::task::spawn_blocking(move || mapping.run(records, summary));

        let source_result = source_task.await.context("the source task panicked")?;
        let (mapping, mut summary, store_error) =
            mapping_task.await.context("the mapping thread panicked")?;
        if let Some(error) = store_error {
            // Sinks see their inputs close without a commit and discard what they wrote.
            drop(mapping);
            return Err(anyhow!("state store: {error}"));
        }
        let Mapping { state, inputs, .. } = mapping;
        let (state, inputs) = finish_versions(state, inputs, &source_result, &positions).await?;
        commit_sinks(inputs, &source_result, &mut summary).await;
        let delivered = join_sinks(sink_tasks, &positions, &source_result, &mut summary).await?;
        if let Some((state, held)) = state {
            crash_point(CrashPoint::BeforeAck);
            acknowledge(state, held, delivered, source_result.is_ok(), &mut summary)?;
        }
        summary.duration_seconds = started.elapsed().as_secs_f64();
        summary.decide_exit_code();
        Ok(summary)
    }
}

/// Opens the state store and begins the run.
fn open_state(options: Option<StateOptions>) -> Result<Option<RunState>> {
    let Some(options) = options else {
        return Ok(None);
    };
    let store = Store::open(&options.path).map_err(|e| anyhow!(e))?;
    let versioner =
        Versioner::begin_run(store, &Timestamp::now(), options.coverage).map_err(|e| anyhow!(e))?;
    Ok(Some(RunState {
        versioner,
        file: options.path,
        full: options.full,
    }))
}

/// The objects every output starts with, with their versions when there is a store.
fn version_preamble(state: Option<&mut RunState>, mapper: &Mapper) -> Result<Arc<[Emitted]>> {
    let preamble = match state {
        Some(state) => state
            .versioner
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
    };
    Ok(preamble.into())
}

/// Where each sink stands: without a store, every sink gets everything.
fn sink_positions(state: Option<&RunState>, sinks: &[NamedSink]) -> Result<Vec<Position>> {
    sinks
        .iter()
        .map(|(name, _)| match state {
            Some(state) => state
                .versioner
                .position(name, state.full)
                .map_err(|e| anyhow!("state store: {e}")),
            None => Ok(Position::default()),
        })
        .collect()
}

/// Starts a thread per sink, fed through its own bounded channel.
fn spawn_sinks(
    sinks: Vec<NamedSink>,
    positions: &[Position],
    preamble: &Arc<[Emitted]>,
) -> (SinkInputs, Vec<SinkTask>) {
    let mut inputs: SinkInputs = Vec::new();
    let mut tasks = Vec::new();
    for ((name, sink), &position) in sinks.into_iter().zip(positions) {
        let (tx, rx) = mpsc::channel::<SinkMessage>(SINK_CHANNEL);
        let preamble = preamble.clone();
        inputs.push((name.clone(), tx));
        tasks.push((
            name,
            tokio::task::spawn_blocking(move || drive_sink(sink, &preamble, position, rx)),
        ));
    }
    (inputs, tasks)
}

/// What the mapping thread owns while it runs, and hands back when the source is done.
struct Mapping {
    filter: Filter,
    mapper: Mapper,
    state: Option<RunState>,
    inputs: SinkInputs,
    progress: Progress,
}

impl Mapping {
    /// Filters, maps and versions every record, and hands it to every sink. Returns what it
    /// owned, the counts, and the store's error if versioning failed (the mapping then stopped).
    fn run(
        mut self,
        mut records: mpsc::Receiver<SourceRecord>,
        mut summary: Summary,
    ) -> (Self, Summary, Option<StateError>) {
        let mut store_error = None;
        while let Some(record) = records.blocking_recv() {
            let outcome = match self.filter.keeps(&record) {
                Decision::Keep => self.mapper.map(record),
                Decision::Drop(filtered) => Outcome::Filtered(filtered),
            };
            if let Err(error) = self.take(outcome, &mut summary) {
                store_error = Some(error);
                break;
            }
            self.progress.update(&summary);
        }
        self.progress.finish();
        if self.filter.unscored_hosts_kept() > 0 {
            tracing::warn!(
                "--min-reputation: {} host indicator(s) had no reputation score (not looked up \
                 within --enrich-max, or no reputation record) and were kept",
                self.filter.unscored_hosts_kept()
            );
        }
        (self, summary, store_error)
    }

    /// Counts one outcome; a mapped record is versioned and sent on.
    fn take(&mut self, outcome: Outcome, summary: &mut Summary) -> Result<(), StateError> {
        let versioner = self.state.as_mut().map(|state| &mut state.versioner);
        match outcome {
            Outcome::Mapped(mut mapped) => {
                match &mapped {
                    Mapped::Profile(_) => summary.profiles += 1,
                    Mapped::Indicator(_) => summary.indicators += 1,
                    Mapped::Revoked(_) => {}
                }
                if let Some(versioner) = versioner {
                    versioner.version(&mut mapped)?;
                }
                summary.objects += mapped.objects().iter().filter(|e| e.first).count() as u64;
                send(&mut self.inputs, Arc::new(mapped));
            }
            Outcome::Rejected(rejection) => {
                if let Some(versioner) = versioner {
                    versioner.rejected(rejection.record)?;
                }
                summary.reject(rejection)
            }
            Outcome::Skipped(skipped) => summary.skip(skipped),
            Outcome::Filtered(filtered) => summary.filter(filtered),
        }
        Ok(())
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

/// Ends the store's part of the mapping: with a complete source, the store revokes what the
/// source stopped listing, and the sinks that lag get the revocations they miss (a new sink has
/// none). Returns the store with why revocation was held back, if it was.
async fn finish_versions(
    state: Option<RunState>,
    mut inputs: SinkInputs,
    source_result: &Result<SourceReport, RunError>,
    positions: &[Position],
) -> Result<(Option<(RunState, Held)>, SinkInputs)> {
    let Some(mut state) = state else {
        return Ok((None, inputs));
    };
    let complete = source_result.is_ok();
    let revocations_after = positions.iter().filter_map(|p| p.acked).min();
    let (state, inputs, held) = tokio::task::spawn_blocking(move || {
        let held = (|| {
            let held = state.versioner.finish_listing(complete)?;
            if complete && let Some(after) = revocations_after {
                state.versioner.revocations_after(after, |revocation| {
                    send(&mut inputs, Arc::new(revocation))
                })?;
            }
            Ok::<_, StateError>(held)
        })();
        (state, inputs, held)
    })
    .await
    .context("the state thread panicked")?;
    // On an error, the sinks see their inputs close without a commit.
    let held = held.map_err(|e| anyhow!("state store: {e}"))?;
    Ok((Some((state, held)), inputs))
}

/// Sinks commit only a complete run; after a source failure they discard what they wrote.
async fn commit_sinks(
    inputs: SinkInputs,
    source_result: &Result<SourceReport, RunError>,
    summary: &mut Summary,
) {
    match source_result {
        Ok(report) => {
            for (_, input) in &inputs {
                let _ = input.send(SinkMessage::Commit).await;
            }
            if let Some(captured) = &report.captured {
                summary.sinks.push(SinkSummary::captured(captured));
            }
        }
        Err(error) => {
            tracing::error!("the source failed: {error}");
            summary.source_error = Some(error.to_string());
        }
    }
}

/// Waits for every sink and adds its line to the summary. Returns the lines of the sinks that
/// delivered a complete run, with the run each had acknowledged before.
async fn join_sinks(
    tasks: Vec<SinkTask>,
    positions: &[Position],
    source_result: &Result<SourceReport, RunError>,
    summary: &mut Summary,
) -> Result<Vec<(usize, Option<u32>)>> {
    let mut delivered = Vec::new();
    for ((name, task), position) in tasks.into_iter().zip(positions) {
        let result = task.await.context("a sink thread panicked")?;
        let sink_summary = SinkSummary::of_sink(name, result);
        if sink_summary.status == SinkStatus::Ok && source_result.is_ok() {
            delivered.push((summary.sinks.len(), position.acked));
        }
        summary.sinks.push(sink_summary);
    }
    Ok(delivered)
}

/// Records what each delivered sink now holds, and ends the run in the store.
fn acknowledge(
    state: RunState,
    held: Held,
    delivered: Vec<(usize, Option<u32>)>,
    source_complete: bool,
    summary: &mut Summary,
) -> Result<()> {
    let RunState {
        mut versioner,
        file,
        full,
    } = state;
    summary.state = Some(StateSummary {
        file: file.display().to_string(),
        run: versioner.run(),
        versions: versioner.counts().clone(),
        revocation_held: held,
        full,
    });
    let now = Timestamp::now();
    let mut acknowledge = Vec::new();
    for (index, acked_before) in delivered {
        let sink = &mut summary.sinks[index];
        // A run that did not list everything (filters, held revocations) may not have carried
        // versions an earlier, interrupted run made: the sink then keeps its position and gets
        // them again, unchanged, rather than miss them.
        let may_lack = versioner
            .may_lack_versions(acked_before)
            .map_err(|e| anyhow!("state store: {e}"))?;
        if may_lack {
            tracing::warn!(
                sink = %sink.sink,
                "{}: versions made by an interrupted run may not be in this run's listing; its \
                 position stays, and they are sent again with the next complete run",
                sink.sink
            );
            sink.acknowledged = Some(false);
        } else {
            acknowledge.push(index);
        }
    }
    for index in acknowledge {
        let sink = &mut summary.sinks[index];
        versioner
            .acknowledge(&sink.sink, &now)
            .map_err(|e| anyhow!("state store: recording what {} received: {e}", sink.sink))?;
        sink.acknowledged = Some(true);
    }
    versioner
        .finish_run(&now, source_complete)
        .map_err(|e| anyhow!("state store: {e}"))
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
) -> SinkResult {
    let snapshot = sink.delivery() == Delivery::Snapshot;
    let mut selector = Selector::new(position, snapshot);
    let preamble_objects: Vec<EncodedObject> = preamble.iter().map(|e| e.object.clone()).collect();
    sink.acknowledged(position.acked);
    // A sink that takes changes begins only once it has one, so that a run with nothing new
    // writes nothing but an empty output; the last profile record is kept as context.
    let mut begun = false;
    if selector.preamble_news(preamble) || snapshot {
        sink.begin(&preamble_objects)?;
        begun = true;
    }
    let mut context = None;
    let mut indicators = 0u64;
    while let Some(message) = input.blocking_recv() {
        match message {
            SinkMessage::Record(record) => {
                let Some(view) = selector.view(&record) else {
                    continue;
                };
                let news = view.carries_news();
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
                let counted = news || snapshot;
                indicators += u64::from(counted && matches!(*view, Mapped::Indicator(_)));
            }
            SinkMessage::Commit => {
                if !begun {
                    sink.begin(&[])?;
                }
                crash_point(CrashPoint::SinksWritten);
                let delta = position.stateful.then(|| selector.counts().clone());
                return Ok((sink.finish()?, indicators, delta));
            }
        }
    }
    // Dropping the sink discards its temporary files.
    Err(SinkError::Other(
        "not written: the source failed, so the output would be incomplete".into(),
    ))
}
