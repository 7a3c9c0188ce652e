//! What an export takes (`ctiport export` filters): the profile selection (`--kind`,
//! `--profile`) that sources apply before they read a profile's indicators.
//!
//! The indicator filters (`--source`, `--artifact-type`, `--seen-since`, `--min-reputation`) live
//! in the transform crate; they share [`FilterKind`] and [`Filtered`] (records, in
//! [`crate::record`]) with the sources so that the run summary counts every record a filter left
//! out, wherever it was left out.

use serde_json::Value;

use crate::graph::ProfileKind;
use crate::record::{FilterKind, Filtered, RecordKind};

/// `--kind` and `--profile`: the profiles an export takes. Empty means every profile.
///
/// Sources apply it to the raw listing, before a profile is parsed and before its indicators are
/// read or fetched, so a profile left out costs nothing but its listing entry and a malformed
/// profile that was not asked for does not make the run partial.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileSelection {
    /// `--kind`: only profiles of this kind (compared case-insensitively, as Graph's enum is).
    pub kind: Option<ProfileKind>,
    /// `--profile`: only these profile ids (exact, case-sensitive), in this order.
    pub ids: Vec<String>,
}

impl ProfileSelection {
    /// True when every profile is taken.
    pub fn takes_all(&self) -> bool {
        self.kind.is_none() && self.ids.is_empty()
    }

    /// The requested ids, in the order given, each once.
    pub fn unique_ids(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.ids
            .iter()
            .map(String::as_str)
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// Why a profile with this id and `kind` value is left out, or `None` when it is taken. A
    /// profile without an id matches no `--profile`; one without a kind matches no `--kind`.
    pub fn excludes(&self, id: Option<&str>, kind: Option<&str>) -> Option<FilterKind> {
        if !self.ids.is_empty() && !id.is_some_and(|id| self.ids.iter().any(|want| want == id)) {
            return Some(FilterKind::Profile);
        }
        match &self.kind {
            Some(want) if !kind.is_some_and(|kind| kind.eq_ignore_ascii_case(want.as_str())) => {
                Some(FilterKind::Kind)
            }
            _ => None,
        }
    }

    /// [`excludes`](Self::excludes) for a raw Graph profile (a `{"value": {…}}` wrapper allowed).
    pub fn excludes_raw(&self, profile: &Value) -> Option<FilterKind> {
        if self.takes_all() {
            return None;
        }
        let entity = match (profile.get("id"), profile.get("value")) {
            (None, Some(inner @ Value::Object(_))) => inner,
            _ => profile,
        };
        let id = crate::graph::raw_record_id(entity);
        let kind = entity.get("kind").and_then(Value::as_str);
        self.excludes(id.as_deref(), kind)
    }

    /// The [`Filtered`] record of a raw profile this selection leaves out.
    pub fn filtered_raw(&self, profile: &Value) -> Option<Filtered> {
        let by = self.excludes_raw(profile)?;
        Some(Filtered {
            id: crate::graph::raw_record_id(profile)
                .unwrap_or_else(|| "(profile without id)".into()),
            record: RecordKind::Profile,
            by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_selection_takes_everything_even_malformed_profiles() {
        let all = ProfileSelection::default();
        assert!(all.takes_all());
        assert_eq!(all.excludes_raw(&json!({"title": "no id, no kind"})), None);
        assert_eq!(all.excludes_raw(&json!([1, 2])), None);
    }

    #[test]
    fn kind_is_case_insensitive_and_a_missing_kind_does_not_match() {
        let actors = ProfileSelection {
            kind: Some(ProfileKind::Actor),
            ids: Vec::new(),
        };
        assert_eq!(
            actors.excludes_raw(&json!({"id": "a", "kind": "Actor"})),
            None
        );
        assert_eq!(
            actors.excludes_raw(&json!({"value": {"id": "a", "kind": "actor"}})),
            None
        );
        assert_eq!(
            actors.excludes_raw(&json!({"id": "t", "kind": "tool"})),
            Some(FilterKind::Kind)
        );
        assert_eq!(
            actors.excludes_raw(&json!({"id": "x"})),
            Some(FilterKind::Kind)
        );
        assert_eq!(
            actors.excludes_raw(&json!({"id": "x", "kind": 3})),
            Some(FilterKind::Kind)
        );
    }

    #[test]
    fn ids_are_exact_and_checked_before_the_kind() {
        let selection = ProfileSelection {
            kind: Some(ProfileKind::Tool),
            ids: vec!["ab/c+d=".into(), "cerium".into(), "cerium".into()],
        };
        assert_eq!(selection.unique_ids(), ["ab/c+d=", "cerium"]);
        assert_eq!(selection.excludes(Some("ab/c+d="), Some("tool")), None);
        assert_eq!(
            selection.excludes(Some("Cerium"), Some("actor")),
            Some(FilterKind::Profile)
        );
        assert_eq!(
            selection.excludes(Some("cerium"), Some("actor")),
            Some(FilterKind::Kind)
        );
        assert_eq!(
            selection.excludes(None, Some("tool")),
            Some(FilterKind::Profile)
        );
        let filtered = selection
            .filtered_raw(&json!({"id": "other", "kind": "tool"}))
            .unwrap();
        assert_eq!(
            (filtered.id.as_str(), filtered.record, filtered.by),
            ("other", RecordKind::Profile, FilterKind::Profile)
        );
        assert_eq!(
            selection
                .filtered_raw(&json!({"kind": "tool"}))
                .map(|f| f.id),
            Some("(profile without id)".into())
        );
    }
}
