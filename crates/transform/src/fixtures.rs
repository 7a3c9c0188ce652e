//! Records the tests map and filter: Graph profiles and indicators as a source yields them.

use ctiport_model::graph::{IntelProfile, ProfileIndicator};
use ctiport_model::record::{Mapped, SourceRecord};
use serde_json::{Value, json};

use crate::{Mappings, Outcome};

/// The mapping tables ctiport ships.
pub(crate) fn mappings() -> Mappings {
    Mappings::embedded().unwrap()
}

/// A profile of `kind` (`actor`, `tool`, or anything else) with a title, aliases, a target, an
/// origin and tradecraft.
pub(crate) fn profile(id: &str, kind: &str) -> SourceRecord {
    SourceRecord::Profile(
        IntelProfile::from_json(json!({
            "id": id, "kind": kind, "title": format!("Title {id}"), "firstActiveDateTime": "2020-02-24T00:00:00Z",
            "aliases": ["A", "a", format!("Title {id}")], "targets": ["Financial Services: Banking"],
            "countriesOrRegionsOfOrigin": [{"code": "RU", "label": "Russia"}, {"code": "??", "label": "Nowhere"}],
            "tradecraft": {"content": "Uses\r\nphishing", "format": "markdown"}
        }))
        .unwrap(),
    )
}

/// An indicator of the profile, from Microsoft, first seen at `first_seen`.
pub(crate) fn indicator(
    profile_id: &str,
    id: &str,
    artifact: Value,
    first_seen: &str,
) -> SourceRecord {
    SourceRecord::Indicator {
        profile_id: profile_id.into(),
        indicator: ProfileIndicator::from_json(json!({"id": id, "source": "microsoft", "firstSeenDateTime": first_seen, "artifact": artifact})).unwrap(),
        host: None,
    }
}

/// The mapped record of an outcome that must be one.
pub(crate) fn mapped(outcome: Outcome) -> Mapped {
    match outcome {
        Outcome::Mapped(m) => m,
        other => panic!("expected a mapping, got {other:?}"),
    }
}
