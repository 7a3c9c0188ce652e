//! `ctiport export` filters: which records an export takes.
//!
//! The [`Filter`] runs in the mapping thread on every source record, before the mapper, so a
//! record it leaves out never creates an object, never claims an id and never counts as the
//! "first occurrence" of an indicator value. Its decisions are [`Decision::Drop`]s carrying a
//! [`Filtered`] that the run summary counts (`filtered`), apart from rejections and skips: a
//! filtered record is the user's choice, not a problem, and does not make a run partial.
//!
//! | option | record | kept when |
//! |---|---|---|
//! | `--profile <id>` | profile | its id is one of those given (sources also skip the indicators of other profiles) |
//! | `--kind actor\|tool` | profile | its `kind` is that kind (case-insensitive) |
//! | `--source` | indicator | its `source` is one of those given (both Graph spellings match) |
//! | `--artifact-type` | indicator | its artifact's `@odata.type` is one of the Graph types given, or its value classifies as one of the value types given |
//! | `--seen-since` | indicator | its latest sighting (`lastSeenDateTime`, else `firstSeenDateTime`) is on or after the date; an indicator with neither is left out |
//! | `--min-reputation` | indicator | it has no reputation score (not a host, not looked up, unknown to MDTI's reputation API), or its score is at least N |
//!
//! Every filter given must keep a record for it to be exported. The indicators of a profile that
//! is left out are left out with it, under the profile's reason. Records the source could not read
//! are never filtered: they stay rejections, since no filter can tell what they were.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ctiport_model::graph::{Artifact, IndicatorSource, ProfileIndicator, odata_type_name};
use ctiport_model::host::HostFacts;
use ctiport_model::record::{FilterKind, Filtered, ObservableType, RecordKind, SourceRecord};
use ctiport_model::selection::ProfileSelection;
use ctiport_model::timestamp::Timestamp;

use crate::mappings::Mappings;
use crate::observable::{Classified, classify};

/// What the user asked for; everything empty (the default) keeps every record.
#[derive(Clone, Debug, Default)]
pub struct FilterOptions {
    /// `--kind`, `--profile`.
    pub profiles: ProfileSelection,
    /// `--source`: any of these.
    pub sources: Vec<IndicatorSource>,
    /// `--artifact-type`: any of these (see [`ArtifactTypeName::parse`]).
    pub artifact_types: Vec<ArtifactTypeName>,
    /// `--seen-since`.
    pub seen_since: Option<Timestamp>,
    /// `--min-reputation`: 0–100.
    pub min_reputation: Option<u8>,
}

/// One `--artifact-type` value: a Graph artifact type or one of ctiport's value types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactTypeName {
    /// An artifact `@odata.type`, reduced as [`odata_type_name`] does (`ipaddress`).
    Graph(String),
    /// A value type (`url`, `sha256`, `ipv4-cidr`, …): what the artifact's value classifies as.
    Value(ObservableType),
}

/// The Graph artifact types MDTI documents, as users spell them (for messages).
const GRAPH_TYPES: &str = "hostname, ipAddress, host, sslCertificate, unclassifiedArtifact, \
hostSslCertificate, hostComponent, hostCookie, hostTracker, passiveDnsRecord";

impl ArtifactTypeName {
    /// Parses a user-given name, case-insensitively: a value type name (`sha256`, `x509-sha1`),
    /// else an artifact type of the `artifact-types` table (`ipAddress`, also written
    /// `#microsoft.graph.security.ipAddress`). A name with `#` or `.` is always a Graph type.
    pub fn parse(name: &str, mappings: &Mappings) -> Result<Self, String> {
        let name = name.trim();
        let lower = name.to_ascii_lowercase();
        let value_type = (!name.contains(['#', '.']))
            .then(|| ObservableType::parse(&lower))
            .flatten();
        if let Some(value_type) = value_type {
            return Ok(ArtifactTypeName::Value(value_type));
        }
        let graph = odata_type_name(name);
        if !graph.is_empty() && mappings.artifact_handling(&graph).is_some() {
            return Ok(ArtifactTypeName::Graph(graph));
        }
        let value_types: Vec<&str> = ObservableType::ALL.iter().map(|t| t.as_str()).collect();
        Err(format!(
            "--artifact-type: unknown type '{name}' (Graph artifact types: {GRAPH_TYPES}; value types: {})",
            value_types.join(", ")
        ))
    }
}

/// `--seen-since`: an RFC 3339 date-time with its offset (`2024-05-01T08:00:00+02:00`) or a date
/// (`2024-05-01`, midnight UTC).
pub fn parse_since(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let is_date = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let time = text.get(10..).unwrap_or_default();
    let has_zone = time.len() > 1
        && matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        && (time.ends_with(['Z', 'z']) || time[1..].contains(['+', '-']));
    (is_date || has_zone)
        .then(|| Timestamp::parse(text))
        .flatten()
        .ok_or_else(|| {
            format!(
                "--seen-since: '{text}' is neither an RFC 3339 date-time with an offset \
                 (2024-05-01T00:00:00Z) nor a date (2024-05-01)"
            )
        })
}

/// What the filter says about one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Drop(Filtered),
}

/// The indicator criteria that need no enrichment: shared with the sources (see
/// [`Filter::enrichment_gate`]) so that hosts of indicators left out are not looked up.
#[derive(Debug)]
struct IndicatorCriteria {
    sources: Vec<IndicatorSource>,
    graph_types: BTreeSet<String>,
    value_types: Vec<ObservableType>,
    /// Only when value types are asked for: classifying a value needs the tables.
    mappings: Option<Mappings>,
    seen_since: Option<Timestamp>,
}

impl IndicatorCriteria {
    fn check(&self, indicator: &ProfileIndicator) -> Option<FilterKind> {
        if !self.sources.is_empty()
            && !indicator
                .source
                .as_ref()
                .is_some_and(|s| self.sources.contains(s))
        {
            return Some(FilterKind::Source);
        }
        if self.filters_types() && !self.artifact_type_matches(indicator) {
            return Some(FilterKind::ArtifactType);
        }
        let seen_before = |since| latest_sighting(indicator).is_none_or(|seen| seen < since);
        if self.seen_since.is_some_and(seen_before) {
            return Some(FilterKind::SeenSince);
        }
        None
    }

    fn filters_types(&self) -> bool {
        !self.graph_types.is_empty() || !self.value_types.is_empty()
    }

    fn artifact_type_matches(&self, indicator: &ProfileIndicator) -> bool {
        let Some(artifact) = &indicator.artifact else {
            return false;
        };
        if self.graph_types.contains(&artifact.type_name) {
            return true;
        }
        match &self.mappings {
            Some(mappings) if !self.value_types.is_empty() => matches!(
                classify(artifact, mappings),
                Classified::Value(value_type, _) if self.value_types.contains(&value_type)
            ),
            _ => false,
        }
    }
}

/// The later of an indicator's two sightings (normally `lastSeenDateTime`; `firstSeenDateTime`
/// when there is no last sighting, or when the pair is inverted).
pub fn latest_sighting(indicator: &ProfileIndicator) -> Option<Timestamp> {
    indicator.first_seen.max(indicator.last_seen)
}

/// Whether enrichment looks this indicator's host up: a hostname, ipAddress or host artifact that
/// names one host (not a range).
fn is_enrichable_host(indicator: &ProfileIndicator) -> bool {
    indicator
        .artifact
        .as_ref()
        .and_then(Artifact::host_key)
        .is_some()
}

/// The export filters, with the little state they need: the profiles left out (so that their
/// indicators follow them out) and a count of host indicators kept for want of a score.
#[derive(Debug)]
pub struct Filter {
    selection: ProfileSelection,
    criteria: Arc<IndicatorCriteria>,
    min_reputation: Option<u8>,
    /// Profiles this filter left out, with the reason their indicators inherit. Profiles a source
    /// left out are not kept here: the source never yields their indicators.
    dropped_profiles: HashMap<String, FilterKind>,
    unscored_hosts: u64,
}

impl Filter {
    pub fn new(options: FilterOptions, mappings: &Mappings) -> Self {
        let mut graph_types = BTreeSet::new();
        let mut value_types = Vec::new();
        for name in options.artifact_types {
            match name {
                ArtifactTypeName::Graph(name) => {
                    graph_types.insert(name);
                }
                ArtifactTypeName::Value(value_type) if !value_types.contains(&value_type) => {
                    value_types.push(value_type);
                }
                ArtifactTypeName::Value(_) => {}
            }
        }
        let mappings = (!value_types.is_empty()).then(|| mappings.clone());
        Filter {
            selection: options.profiles,
            criteria: Arc::new(IndicatorCriteria {
                sources: options.sources,
                graph_types,
                value_types,
                mappings,
                seen_since: options.seen_since,
            }),
            min_reputation: options.min_reputation,
            dropped_profiles: HashMap::new(),
            unscored_hosts: 0,
        }
    }

    /// True when some indicator criterion is set (sources then pass [`enrichment_gate`]).
    ///
    /// [`enrichment_gate`]: Self::enrichment_gate
    pub fn filters_indicators(&self) -> bool {
        let c = &self.criteria;
        !c.sources.is_empty() || c.filters_types() || c.seen_since.is_some()
    }

    /// The criteria that do not depend on enrichment, for a source to ask before it looks an
    /// indicator's host up: an indicator they leave out costs no lookup and no `--enrich-max`
    /// budget. (`--min-reputation` is not part of it: it needs the lookup.)
    pub fn enrichment_gate(&self) -> impl Fn(&ProfileIndicator) -> bool + Send + Sync + 'static {
        let criteria = self.criteria.clone();
        move |indicator| criteria.check(indicator).is_none()
    }

    /// Host indicators kept by `--min-reputation` because they had no reputation score.
    pub fn unscored_hosts_kept(&self) -> u64 {
        self.unscored_hosts
    }

    /// Decides one source record.
    pub fn keeps(&mut self, record: &SourceRecord) -> Decision {
        let drop = |id: &str, record, by| {
            Decision::Drop(Filtered {
                id: id.to_owned(),
                record,
                by,
            })
        };
        match record {
            SourceRecord::Profile(profile) => {
                match self
                    .selection
                    .excludes(Some(&profile.id), Some(profile.kind.as_str()))
                {
                    Some(by) => {
                        self.dropped_profiles.insert(profile.id.clone(), by);
                        drop(&profile.id, RecordKind::Profile, by)
                    }
                    None => {
                        self.dropped_profiles.remove(&profile.id);
                        Decision::Keep
                    }
                }
            }
            SourceRecord::Indicator {
                profile_id,
                indicator,
                host,
            } => {
                if let Some(by) = self.dropped_profiles.get(profile_id) {
                    return drop(&indicator.id, RecordKind::Indicator, *by);
                }
                if let Some(by) = self.criteria.check(indicator) {
                    return drop(&indicator.id, RecordKind::Indicator, by);
                }
                match self.reputation_check(indicator, host.as_deref()) {
                    Some(by) => drop(&indicator.id, RecordKind::Indicator, by),
                    None => Decision::Keep,
                }
            }
            SourceRecord::Filtered(filtered) => Decision::Drop(filtered.clone()),
            SourceRecord::Rejected(_) => Decision::Keep,
        }
    }

    fn reputation_check(
        &mut self,
        indicator: &ProfileIndicator,
        host: Option<&HostFacts>,
    ) -> Option<FilterKind> {
        let min = self.min_reputation?;
        match host.and_then(|h| h.reputation.as_ref()) {
            Some(reputation) if reputation.score < min => Some(FilterKind::MinReputation),
            Some(_) => None,
            None => {
                if is_enrichable_host(indicator) {
                    self.unscored_hosts += 1;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{mappings, profile};
    use ctiport_model::graph::ProfileKind;
    use ctiport_model::host::Reputation;
    use proptest::prelude::*;

    fn filter(options: FilterOptions) -> Filter {
        Filter::new(options, &mappings())
    }

    fn types(names: &[&str]) -> Vec<ArtifactTypeName> {
        names
            .iter()
            .map(|n| ArtifactTypeName::parse(n, &mappings()).unwrap())
            .collect()
    }

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn artifact(odata: &str, id: &str) -> Artifact {
        Artifact {
            type_name: odata_type_name(odata),
            id: Some(id.into()),
            kind: None,
            value: None,
        }
    }

    fn unclassified(kind: &str, value: &str) -> Artifact {
        Artifact {
            type_name: "unclassifiedartifact".into(),
            id: None,
            kind: Some(kind.into()),
            value: Some(value.into()),
        }
    }

    fn indicator_with(
        profile_id: &str,
        source: Option<&str>,
        artifact: Option<Artifact>,
        first: Option<&str>,
        last: Option<&str>,
        score: Option<u8>,
    ) -> SourceRecord {
        SourceRecord::Indicator {
            profile_id: profile_id.into(),
            indicator: ProfileIndicator {
                id: "i1".into(),
                source: source.map(IndicatorSource::parse),
                first_seen: first.map(ts),
                last_seen: last.map(ts),
                artifact,
            },
            host: score.map(|score| {
                Arc::new(HostFacts {
                    host: "h".into(),
                    reputation: Some(Reputation {
                        classification: "malicious".into(),
                        score,
                        rules: Vec::new(),
                    }),
                    ..HostFacts::default()
                })
            }),
        }
    }

    fn host_indicator(source: &str, host: &str, score: Option<u8>) -> SourceRecord {
        indicator_with(
            "p",
            Some(source),
            Some(artifact("#microsoft.graph.security.hostname", host)),
            Some("2024-01-01T00:00:00Z"),
            None,
            score,
        )
    }

    fn dropped_by(decision: Decision) -> Option<FilterKind> {
        match decision {
            Decision::Keep => None,
            Decision::Drop(filtered) => Some(filtered.by),
        }
    }

    #[test]
    fn no_options_keep_everything() {
        let mut none = filter(FilterOptions::default());
        assert!(!none.filters_indicators());
        for record in [
            profile("p", "campaign"),
            indicator_with("p", None, None, None, None, None),
            host_indicator("public", "a.example", Some(0)),
        ] {
            assert_eq!(none.keeps(&record), Decision::Keep);
        }
    }

    #[test]
    fn artifact_types_parse_graph_and_value_names_case_insensitively() {
        let m = mappings();
        let parse = |n: &str| ArtifactTypeName::parse(n, &m);
        assert_eq!(
            parse("ipAddress"),
            Ok(ArtifactTypeName::Graph("ipaddress".into()))
        );
        assert_eq!(
            parse(" HOSTNAME "),
            Ok(ArtifactTypeName::Graph("hostname".into()))
        );
        assert_eq!(
            parse("#microsoft.graph.security.sslCertificate"),
            Ok(ArtifactTypeName::Graph("sslcertificate".into()))
        );
        assert_eq!(
            parse("hostCookie"),
            Ok(ArtifactTypeName::Graph("hostcookie".into()))
        );
        assert_eq!(
            parse("SHA256"),
            Ok(ArtifactTypeName::Value(ObservableType::Sha256))
        );
        assert_eq!(
            parse("x509-sha1"),
            Ok(ArtifactTypeName::Value(ObservableType::X509Sha1))
        );
        let error = parse("filehash").unwrap_err();
        assert!(
            error.contains("'filehash'") && error.contains("ipAddress") && error.contains("sha256"),
            "{error}"
        );
        assert!(parse("").is_err());
    }

    #[test]
    fn seen_since_takes_rfc3339_with_an_offset_or_a_date() {
        assert_eq!(parse_since("2024-05-01"), Ok(ts("2024-05-01T00:00:00Z")));
        assert_eq!(
            parse_since("2024-05-01T08:00:00+02:00"),
            Ok(ts("2024-05-01T06:00:00Z"))
        );
        assert_eq!(
            parse_since("2024-05-01t06:00:00.5z"),
            Ok(ts("2024-05-01T06:00:00.500Z"))
        );
        for bad in [
            "2024-05-01T06:00:00",
            "2024-5-1",
            "yesterday",
            "",
            "2024-13-01",
            "2024-05-01T25:00:00Z",
            "20240501",
        ] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_profile_left_out_takes_its_indicators_with_it() {
        let mut tools = filter(FilterOptions {
            profiles: ProfileSelection {
                kind: Some(ProfileKind::Tool),
                ids: Vec::new(),
            },
            ..FilterOptions::default()
        });
        assert_eq!(
            dropped_by(tools.keeps(&profile("a", "actor"))),
            Some(FilterKind::Kind)
        );
        assert_eq!(
            dropped_by(tools.keeps(&host_indicator("osint", "x.example", None))),
            None,
            "an indicator of another profile"
        );
        let of_a = indicator_with("a", Some("osint"), None, None, None, None);
        let Decision::Drop(filtered) = tools.keeps(&of_a) else {
            panic!("kept an indicator of a filtered profile")
        };
        assert_eq!(
            (filtered.id.as_str(), filtered.record, filtered.by),
            ("i1", RecordKind::Indicator, FilterKind::Kind)
        );
        assert_eq!(tools.keeps(&profile("t", "TOOL")), Decision::Keep);

        let by_id = ProfileSelection {
            kind: None,
            ids: vec!["t".into()],
        };
        let mut only_t = filter(FilterOptions {
            profiles: by_id,
            ..FilterOptions::default()
        });
        assert_eq!(
            dropped_by(only_t.keeps(&profile("a", "actor"))),
            Some(FilterKind::Profile)
        );
        assert_eq!(only_t.keeps(&profile("t", "actor")), Decision::Keep);
    }

    #[test]
    fn what_a_source_filtered_stays_filtered_and_rejections_stay_rejections() {
        let mut any = filter(FilterOptions::default());
        let filtered = Filtered {
            id: "p".into(),
            record: RecordKind::Profile,
            by: FilterKind::Profile,
        };
        assert_eq!(
            any.keeps(&SourceRecord::Filtered(filtered.clone())),
            Decision::Drop(filtered)
        );
        let mut strict = filter(FilterOptions {
            sources: vec![IndicatorSource::Public],
            seen_since: Some(ts("2030-01-01T00:00:00Z")),
            ..FilterOptions::default()
        });
        let rejected = SourceRecord::Rejected(ctiport_model::record::Rejection {
            id: "line 7".into(),
            record: RecordKind::Line,
            reason: "not JSON".into(),
        });
        assert_eq!(strict.keeps(&rejected), Decision::Keep);
    }

    #[test]
    fn sources_match_both_graph_spellings() {
        let mut microsoft = filter(FilterOptions {
            sources: vec![IndicatorSource::Microsoft, IndicatorSource::Public],
            ..FilterOptions::default()
        });
        for (source, kept) in [
            ("microsoft", true),
            ("microsoftDefenderThreatIntelligence", true),
            ("public", true),
            ("osint", false),
            ("openSourceIntelligence", false),
            ("somethingNew", false),
        ] {
            let decision = microsoft.keeps(&host_indicator(source, "a.example", None));
            assert_eq!(decision == Decision::Keep, kept, "{source}");
        }
        let sourceless = indicator_with("p", None, None, Some("2024-01-01T00:00:00Z"), None, None);
        assert_eq!(
            dropped_by(microsoft.keeps(&sourceless)),
            Some(FilterKind::Source)
        );
    }

    #[test]
    fn artifact_types_match_by_graph_type_or_by_value_type() {
        let mut f = filter(FilterOptions {
            artifact_types: types(&["sslCertificate", "url", "sha256"]),
            ..FilterOptions::default()
        });
        let with = |artifact| indicator_with("p", Some("osint"), artifact, None, None, None);
        let sha256 = "f82ba1ff4e8368d598170c31067ed423c96a1c268d842b8cd897470baf1c1f25";
        for (artifact, kept) in [
            (
                Some(artifact(
                    "#microsoft.graph.security.sslCertificate",
                    "not even a hash",
                )),
                true,
            ),
            (Some(unclassified("url", "hxxp://evil[.]example/a")), true),
            (
                Some(unclassified("observableValue", "https://x.example/")),
                true,
            ),
            (Some(unclassified("fileHash", sha256)), true),
            (
                Some(unclassified("md5", "d41d8cd98f00b204e9800998ecf8427e")),
                false,
            ),
            (Some(unclassified("url", "not a url at all")), false),
            (
                Some(artifact(
                    "#microsoft.graph.security.hostname",
                    "evil.example",
                )),
                false,
            ),
            (
                Some(artifact("#microsoft.graph.security.hostCookie", "Y29va2ll")),
                false,
            ),
            (None, false),
        ] {
            let description = format!("{artifact:?}");
            let decision = f.keeps(&with(artifact));
            assert_eq!(decision == Decision::Keep, kept, "{description}");
            if !kept {
                assert_eq!(dropped_by(decision), Some(FilterKind::ArtifactType));
            }
        }
        let mut hosts = filter(FilterOptions {
            artifact_types: types(&["ipv4", "hostname"]),
            ..FilterOptions::default()
        });
        for (artifact, kept) in [
            (
                artifact("#microsoft.graph.security.ipAddress", "198.51.100.7"),
                true,
            ),
            (
                artifact("#microsoft.graph.security.ipAddress", "2001:db8::1"),
                false,
            ),
            (
                artifact("#microsoft.graph.security.ipAddress", "198.51.100.0/24"),
                false,
            ),
            (
                artifact("#microsoft.graph.security.host", "198.51.100.8"),
                true,
            ),
            (
                artifact("#microsoft.graph.security.hostName", "a.example"),
                true,
            ),
            (unclassified("domain", "a.example"), false),
        ] {
            let description = format!("{artifact:?}");
            assert_eq!(
                hosts.keeps(&with(Some(artifact))) == Decision::Keep,
                kept,
                "{description}"
            );
        }
    }

    #[test]
    fn seen_since_uses_the_latest_sighting_and_leaves_undated_indicators_out() {
        let mut f = filter(FilterOptions {
            seen_since: Some(ts("2024-03-01T00:00:00Z")),
            ..FilterOptions::default()
        });
        let dated = |first: Option<&str>, last: Option<&str>| {
            indicator_with(
                "p",
                Some("osint"),
                Some(artifact("hostname", "a.example")),
                first,
                last,
                None,
            )
        };
        for (first, last, kept) in [
            (
                Some("2024-01-01T00:00:00Z"),
                Some("2024-03-01T00:00:00Z"),
                true,
            ),
            (
                Some("2024-01-01T00:00:00Z"),
                Some("2024-02-29T23:59:59.999Z"),
                false,
            ),
            (Some("2024-03-02T00:00:00Z"), None, true),
            (Some("2024-02-02T00:00:00Z"), None, false),
            (None, Some("2024-04-01T00:00:00Z"), true),
            (
                Some("2024-05-01T00:00:00Z"),
                Some("2023-01-01T00:00:00Z"),
                true,
            ),
            (None, None, false),
        ] {
            let decision = f.keeps(&dated(first, last));
            assert_eq!(decision == Decision::Keep, kept, "{first:?} {last:?}");
            if !kept {
                assert_eq!(dropped_by(decision), Some(FilterKind::SeenSince));
            }
        }
    }

    #[test]
    fn min_reputation_drops_only_scored_hosts_below_the_threshold() {
        let mut f = filter(FilterOptions {
            min_reputation: Some(65),
            ..FilterOptions::default()
        });
        assert_eq!(
            f.keeps(&host_indicator("osint", "a.example", Some(65))),
            Decision::Keep
        );
        assert_eq!(
            f.keeps(&host_indicator("osint", "a.example", Some(100))),
            Decision::Keep
        );
        assert_eq!(
            dropped_by(f.keeps(&host_indicator("osint", "a.example", Some(64)))),
            Some(FilterKind::MinReputation)
        );
        assert_eq!(
            dropped_by(f.keeps(&host_indicator("osint", "a.example", Some(0)))),
            Some(FilterKind::MinReputation)
        );
        assert_eq!(f.unscored_hosts_kept(), 0);
        // Not looked up (over --enrich-max, or unknown): kept, and counted.
        assert_eq!(
            f.keeps(&host_indicator("osint", "a.example", None)),
            Decision::Keep
        );
        // Not a host: reputation does not apply.
        let hash = indicator_with(
            "p",
            Some("osint"),
            Some(unclassified("sha256", "ab")),
            None,
            None,
            None,
        );
        assert_eq!(f.keeps(&hash), Decision::Keep);
        let range = indicator_with(
            "p",
            Some("osint"),
            Some(artifact("ipAddress", "198.51.100.0/24")),
            None,
            None,
            None,
        );
        assert_eq!(f.keeps(&range), Decision::Keep);
        assert_eq!(f.unscored_hosts_kept(), 1);
    }

    #[test]
    fn the_enrichment_gate_applies_every_criterion_but_reputation() {
        let f = filter(FilterOptions {
            sources: vec![IndicatorSource::Osint],
            min_reputation: Some(90),
            ..FilterOptions::default()
        });
        assert!(f.filters_indicators());
        let gate = f.enrichment_gate();
        let of = |record: SourceRecord| match record {
            SourceRecord::Indicator { indicator, .. } => indicator,
            _ => unreachable!(),
        };
        assert!(gate(&of(host_indicator(
            "openSourceIntelligence",
            "a.example",
            None
        ))));
        assert!(!gate(&of(host_indicator("public", "a.example", Some(100)))));
    }

    // Property tests: the filter is the conjunction of its parts, and each part is monotone.

    fn arb_source() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop::sample::select(vec![
            "microsoft".to_string(),
            "microsoftDefenderThreatIntelligence".into(),
            "osint".into(),
            "openSourceIntelligence".into(),
            "public".into(),
            "Public".into(),
            "other".into(),
        ]))
    }

    fn arb_artifact() -> impl Strategy<Value = Option<Artifact>> {
        prop::option::of(prop_oneof![
            (
                prop::sample::select(vec![
                    "hostname",
                    "ipAddress",
                    "host",
                    "sslCertificate",
                    "hostCookie",
                    "futureType",
                ]),
                prop::sample::select(vec![
                    "a.example",
                    "198.51.100.7",
                    "2001:db8::1",
                    "198.51.100.0/24",
                    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
                    "",
                ]),
            )
                .prop_map(|(t, id)| artifact(t, id)),
            (
                prop::sample::select(vec!["url", "sha256", "md5", "hash", "email", "", "x"]),
                prop::sample::select(vec![
                    "http://a.example/x",
                    "d41d8cd98f00b204e9800998ecf8427e",
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    "user@a.example",
                    "a.example",
                    "??",
                ]),
            )
                .prop_map(|(kind, value)| unclassified(kind, value)),
        ])
    }

    /// Dates at day granularity (many ties, to probe the "on or after" boundary), within
    /// 1970–2079.
    fn day(days: u32) -> Timestamp {
        Timestamp::epoch().plus_days(days)
    }

    fn arb_date() -> impl Strategy<Value = Option<Timestamp>> {
        prop::option::of((0u32..40_000).prop_map(day))
    }

    prop_compose! {
        fn arb_indicator()(
            source in arb_source(),
            artifact in arb_artifact(),
            first_seen in arb_date(),
            last_seen in arb_date(),
            score in prop::option::of(0u8..=100),
        ) -> SourceRecord {
            SourceRecord::Indicator {
                profile_id: "p".into(),
                indicator: ProfileIndicator {
                    id: "i".into(),
                    source: source.as_deref().map(IndicatorSource::parse),
                    first_seen,
                    last_seen,
                    artifact,
                },
                host: score.map(|score| Arc::new(HostFacts {
                    host: "h".into(),
                    reputation: Some(Reputation { classification: "x".into(), score, rules: Vec::new() }),
                    ..HostFacts::default()
                })),
            }
        }
    }

    prop_compose! {
        fn arb_options()(
            sources in prop::collection::vec(prop::sample::select(vec![
                IndicatorSource::Microsoft, IndicatorSource::Osint, IndicatorSource::Public,
            ]), 0..3),
            artifact_types in prop::collection::vec(prop::sample::select(vec![
                "hostname", "ipAddress", "sslCertificate", "unclassifiedArtifact", "hostCookie",
                "url", "sha256", "md5", "ipv4", "ipv6-cidr", "domain", "email",
            ]), 0..3),
            seen_since in arb_date(),
            min_reputation in prop::option::of(0u8..=100),
        ) -> FilterOptions {
            FilterOptions {
                profiles: ProfileSelection::default(),
                sources,
                artifact_types: types(&artifact_types),
                seen_since,
                min_reputation,
            }
        }
    }

    fn kept(options: FilterOptions, record: &SourceRecord) -> bool {
        filter(options).keeps(record) == Decision::Keep
    }

    proptest! {
        #[test]
        fn a_record_is_kept_iff_every_single_filter_keeps_it(options in arb_options(), record in arb_indicator()) {
            let all = kept(options.clone(), &record);
            let each = [
                FilterOptions { sources: options.sources.clone(), ..FilterOptions::default() },
                FilterOptions { artifact_types: options.artifact_types.clone(), ..FilterOptions::default() },
                FilterOptions { seen_since: options.seen_since, ..FilterOptions::default() },
                FilterOptions { min_reputation: options.min_reputation, ..FilterOptions::default() },
            ];
            prop_assert_eq!(all, each.into_iter().all(|single| kept(single, &record)));
        }

        #[test]
        fn the_enrichment_gate_agrees_with_the_filter_without_reputation(options in arb_options(), record in arb_indicator()) {
            let f = filter(options.clone());
            let gate = f.enrichment_gate();
            let SourceRecord::Indicator { indicator, .. } = &record else { unreachable!() };
            let without_reputation = FilterOptions { min_reputation: None, ..options };
            prop_assert_eq!(gate(indicator), kept(without_reputation, &record));
        }

        #[test]
        fn an_earlier_date_or_a_lower_score_keeps_at_least_as_much(
            record in arb_indicator(),
            since_days in 0u32..40_000,
            earlier_by in 0u32..40_000,
            min in 0u8..=100,
            lower_by in 0u8..=100,
        ) {
            let at = |seen_since| kept(FilterOptions { seen_since: Some(seen_since), ..FilterOptions::default() }, &record);
            prop_assert!(!at(day(since_days)) || at(day(since_days.saturating_sub(earlier_by))));
            let with = |min_reputation| kept(FilterOptions { min_reputation: Some(min_reputation), ..FilterOptions::default() }, &record);
            prop_assert!(!with(min) || with(min.saturating_sub(lower_by)));
            prop_assert!(with(0));
        }

        #[test]
        fn the_seen_since_decision_is_the_latest_sighting_against_the_date(record in arb_indicator(), since in arb_date()) {
            let SourceRecord::Indicator { indicator, .. } = &record else { unreachable!() };
            let Some(since) = since else { return Ok(()) };
            let decision = kept(FilterOptions { seen_since: Some(since), ..FilterOptions::default() }, &record);
            let latest = indicator.first_seen.into_iter().chain(indicator.last_seen).max();
            prop_assert_eq!(decision, latest.is_some_and(|t| t >= since));
        }

        #[test]
        fn parse_since_never_panics(text in "\\PC{0,40}", tail in "[0-9TZz:+ .-]{0,30}") {
            let _ = parse_since(&text);
            let _ = parse_since(&format!("2024-05-01{tail}"));
        }

        #[test]
        fn parse_since_reads_back_what_timestamps_print(days in 0u32..40_000, steps in 0u32..3) {
            let mut t = day(days);
            for _ in 0..steps {
                t = t.next_millisecond();
            }
            prop_assert_eq!(parse_since(&t.to_string()), Ok(t));
            let midnight = parse_since(&t.to_string()[..10]).unwrap();
            prop_assert!(midnight <= t && t < midnight.plus_days(1));
        }
    }
}
