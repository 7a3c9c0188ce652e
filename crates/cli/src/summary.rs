//! The machine-readable run summary (`--summary FILE`).

use std::collections::BTreeMap;

use ctiport_fetch::Captured;
use ctiport_model::record::{Filtered, Rejection};
use ctiport_sink::{SinkError, SinkReport};
use ctiport_state::{DeltaCounts, VersionCounts};
use serde::Serialize;

/// How many rejected or skipped records the summary lists by name (all are counted, and all are
/// logged); a broken dump with millions of bad lines must not produce a gigabyte summary.
pub const LISTED_RECORDS: usize = 10_000;

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub profiles: u64,
    pub indicators: u64,
    pub rejected: u64,
    pub skipped: u64,
    /// Records left out by the export filters (`--kind`, `--profile`, `--source`, …): profiles,
    /// and indicators of the profiles taken. Neither exported nor an error.
    pub filtered: u64,
    /// `filtered` by filter (`kind`, `source`, `artifact-type`, …), when any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub filtered_by: BTreeMap<&'static str, u64>,
    /// Distinct STIX objects produced by the mapping (preamble included).
    pub objects: u64,
    pub exit_code: i32,
    pub duration_seconds: f64,
    /// Why the source stopped before the end, when it did (the run then fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    /// With `--state`: what the run did to the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateSummary>,
    pub sinks: Vec<SinkSummary>,
    pub rejected_records: Vec<Rejection>,
    pub skipped_records: Vec<Rejection>,
}

#[derive(Debug, Serialize)]
pub struct SinkSummary {
    pub sink: String,
    /// Indicator records (indicator × profile) delivered: the same for every sink of a run.
    pub indicators: u64,
    /// What the sink wrote, in its own unit: STIX objects, MISP attributes, CSV rows, dump records.
    pub objects: u64,
    pub status: SinkStatus,
    /// Objects the target refused while the rest was delivered (the sink has then failed).
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `--state`: the objects sent (new, changed, revoked) and those the sink already held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaCounts>,
    /// With `--state`: whether the store recorded that the sink holds this run's state (a
    /// failed sink, or one that missed versions this run did not list, gets them next time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<bool>,
}

/// The state store's part of a run (`--state`).
#[derive(Debug, Serialize)]
pub struct StateSummary {
    pub file: String,
    pub run: u32,
    /// Object versions: new to the store, changed, unchanged, revoked in this run.
    #[serde(flatten)]
    pub versions: VersionCounts,
    /// Why revocation was held back (a filter, a rejected record, a failed source), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_held: Option<String>,
    /// `--full`: every sink was sent the current state.
    pub full: bool,
}

impl SinkSummary {
    /// The line of the dump a live run captured (`--to dump:`).
    pub fn captured(captured: &Captured) -> Self {
        SinkSummary {
            sink: format!("dump:{}", captured.path.display()),
            indicators: captured.indicators,
            objects: captured.records,
            status: SinkStatus::Ok,
            failed: 0,
            files: vec![captured.path.display().to_string()],
            error: None,
            delta: None,
            acknowledged: None,
        }
    }

    /// One sink's line: its report, the indicator records it took in and, with a state store,
    /// what was new to it; or why it failed.
    pub fn of_sink(
        name: String,
        result: Result<(SinkReport, u64, Option<DeltaCounts>), SinkError>,
    ) -> Self {
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
}

/// Before the store records it, a sink with a state store has not acknowledged the run.
fn delta_known(delta: &Option<DeltaCounts>) -> Option<bool> {
    delta.as_ref().map(|_| false)
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkStatus {
    Ok,
    Failed,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    pub fn reject(&mut self, rejection: Rejection) {
        tracing::warn!(id = %rejection.id, record = ?rejection.record, reason = %rejection.reason, "rejected record");
        self.rejected += 1;
        if self.rejected_records.len() < LISTED_RECORDS {
            self.rejected_records.push(rejection);
        }
    }

    /// Counts a record an export filter left out (logged at debug level only: a filter can leave
    /// millions out, on purpose).
    pub fn filter(&mut self, filtered: Filtered) {
        tracing::debug!(id = %filtered.id, record = ?filtered.record, filter = filtered.by.as_str(), "filtered record");
        self.filtered += 1;
        *self.filtered_by.entry(filtered.by.as_str()).or_default() += 1;
    }

    pub fn skip(&mut self, skipped: Rejection) {
        tracing::info!(id = %skipped.id, record = ?skipped.record, reason = %skipped.reason, "skipped record");
        self.skipped += 1;
        if self.skipped_records.len() < LISTED_RECORDS {
            self.skipped_records.push(skipped);
        }
    }

    /// The record counts, in words, for the progress line and the last log line.
    pub fn counts(&self) -> String {
        format!(
            "{} profiles, {} indicators, {} objects, {} rejected, {} skipped, {} filtered",
            self.profiles,
            self.indicators,
            self.objects,
            self.rejected,
            self.skipped,
            self.filtered
        )
    }

    /// 1 when the source or a sink failed, 3 when records were rejected, else 0.
    pub fn decide_exit_code(&mut self) -> i32 {
        self.exit_code = if self.source_error.is_some()
            || self.sinks.iter().any(|s| s.status == SinkStatus::Failed)
        {
            1
        } else if self.rejected > 0 {
            3
        } else {
            0
        };
        self.exit_code
    }
}
