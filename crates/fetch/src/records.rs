//! Raw Graph JSON → source records, shared by every source so that a dump and a live run turn
//! the same bytes into the same records.

use ctiport_model::graph::{IntelProfile, ProfileIndicator, raw_record_id};
use ctiport_model::record::{RecordKind, Rejection, SourceRecord};
use serde_json::Value;

pub fn profile_record(value: Value) -> SourceRecord {
    let id = raw_record_id(&value);
    match IntelProfile::from_json(value) {
        Ok(profile) => SourceRecord::Profile(profile),
        Err(error) => SourceRecord::Rejected(Rejection {
            id: id.unwrap_or_else(|| "(profile without id)".into()),
            record: RecordKind::Profile,
            reason: error.to_string(),
        }),
    }
}

pub fn indicator_record(profile_id: &str, value: Value) -> SourceRecord {
    let id = raw_record_id(&value);
    match ProfileIndicator::from_json(value) {
        Ok(indicator) => SourceRecord::Indicator {
            profile_id: profile_id.to_owned(),
            indicator,
            host: None,
        },
        Err(error) => SourceRecord::Rejected(Rejection {
            id: id.unwrap_or_else(|| "(indicator without id)".into()),
            record: RecordKind::Indicator,
            reason: error.to_string(),
        }),
    }
}

/// A record as one line of text, for tests that compare what a source yields.
#[cfg(test)]
pub(crate) fn describe(record: SourceRecord) -> String {
    match record {
        SourceRecord::Profile(p) => format!("profile {}", p.id),
        SourceRecord::Indicator {
            profile_id,
            indicator,
            ..
        } => format!("indicator {profile_id}/{}", indicator.id),
        SourceRecord::Rejected(r) => format!("rejected {} ({:?}): {}", r.id, r.record, r.reason),
        SourceRecord::Filtered(f) => {
            format!("filtered {} ({:?}) by {}", f.id, f.record, f.by.as_str())
        }
    }
}
