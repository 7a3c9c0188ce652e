//! The stateful part of the transform: one record in, one outcome out, with per-run
//! deduplication so that the output holds each object once.
//!
//! Memory: the mapper keeps one small entry per profile and one per distinct indicator value
//! (its 128-bit id plus [`IndicatorFacts`], about 200 bytes with the table's overhead), never the
//! objects themselves.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ctiport_model::host::HostFacts;

use ctiport_model::graph::{IntelProfile, ProfileIndicator};
use ctiport_model::record::{
    Emitted, Filtered, Mapped, MappedIndicator, MappedProfile, RecordKind, Rejection, SourceRecord,
    Version,
};
use ctiport_model::stix::{EncodedObject, StixObject};
use ctiport_model::timestamp::Timestamp;

use crate::context::Context;
use crate::ids::uuid_key;
use crate::indicator::{
    IndicatorFacts, indicates, indicator_object, observable_objects, occurrence_dates,
};
use crate::mappings::Mappings;
use crate::observable::{Classified, classify};
use crate::options::MappingOptions;
use crate::profile::map_profile;

/// What became of one source record.
#[derive(Debug)]
pub enum Outcome {
    Mapped(Mapped),
    /// Malformed or unmappable: the run becomes partial.
    Rejected(Rejection),
    /// Well-formed but carries nothing to export; reported, not an error.
    Skipped(Rejection),
    /// Left out by an export filter (`--kind`, `--source`, …): counted, not an error.
    Filtered(Filtered),
}

struct ProfileEntry {
    /// Position of the profile in the stream: tells a repeat within one profile from a new one.
    sequence: u32,
    indicated_ref: String,
    first_active: Option<Timestamp>,
}

struct IndicatorEntry {
    facts: IndicatorFacts,
    last_profile: u32,
}

pub struct Mapper {
    ctx: Context,
    profiles: HashMap<String, ProfileEntry>,
    /// Profiles that could not be mapped, with the reason, so their indicators say why.
    failed_profiles: HashMap<String, String>,
    /// Profile-level objects already emitted (locations and sectors are shared).
    emitted_context: HashSet<u128>,
    indicators: HashMap<u128, IndicatorEntry>,
}

impl Mapper {
    pub fn new(options: MappingOptions, mappings: Mappings) -> Result<Self, String> {
        Ok(Mapper {
            ctx: Context::new(options, mappings)?,
            profiles: HashMap::new(),
            failed_profiles: HashMap::new(),
            emitted_context: HashSet::new(),
            indicators: HashMap::new(),
        })
    }

    /// The objects every output starts with: the producer identity and the marking definition.
    pub fn preamble(&self) -> Vec<EncodedObject> {
        self.ctx
            .preamble()
            .into_iter()
            .map(EncodedObject::encode)
            .collect()
    }

    pub fn map(&mut self, record: SourceRecord) -> Outcome {
        match record {
            SourceRecord::Profile(profile) => self.map_profile(profile),
            SourceRecord::Indicator {
                profile_id,
                indicator,
                host,
            } => self.map_indicator(&profile_id, indicator, host),
            SourceRecord::Rejected(rejection) => Outcome::Rejected(rejection),
            SourceRecord::Filtered(filtered) => Outcome::Filtered(filtered),
        }
    }

    fn map_profile(&mut self, profile: IntelProfile) -> Outcome {
        let reject = |reason: String| Rejection {
            id: profile.id.clone(),
            record: RecordKind::Profile,
            reason,
        };
        if self.profiles.contains_key(&profile.id) {
            return Outcome::Skipped(reject(
                "profile listed more than once; its first listing was exported".into(),
            ));
        }
        let mapped = match map_profile(&profile, &self.ctx) {
            Ok(mapped) => mapped,
            Err(reason) => {
                self.failed_profiles
                    .insert(profile.id.clone(), reason.clone());
                return Outcome::Rejected(reject(reason));
            }
        };
        for dropped in &mapped.dropped {
            tracing::warn!(profile = %profile.id, "dropped {dropped}");
        }
        let sequence = u32::try_from(self.profiles.len()).unwrap_or(u32::MAX);
        self.profiles.insert(
            profile.id.clone(),
            ProfileEntry {
                sequence,
                indicated_ref: mapped.indicated_ref.clone(),
                first_active: profile.first_active,
            },
        );
        let objects = mapped
            .objects
            .iter()
            .map(|object| Emitted {
                first: self.first_time(object),
                object: EncodedObject::encode(object),
                version: Version::default(),
            })
            .collect();
        Outcome::Mapped(Mapped::Profile(MappedProfile {
            profile_id: profile.id.clone(),
            title: profile.title.clone().unwrap_or_default(),
            kind: profile.kind.clone(),
            indicated_ref: mapped.indicated_ref,
            profile: std::sync::Arc::new(profile),
            objects,
        }))
    }

    fn first_time(&mut self, object: &StixObject) -> bool {
        uuid_key(object.id()).is_none_or(|key| self.emitted_context.insert(key))
    }

    fn map_indicator(
        &mut self,
        profile_id: &str,
        indicator: ProfileIndicator,
        host: Option<Arc<HostFacts>>,
    ) -> Outcome {
        let reject = |reason: String| Rejection {
            id: indicator.id.clone(),
            record: RecordKind::Indicator,
            reason,
        };
        let Some(profile) = self.profiles.get(profile_id) else {
            let why = self
                .failed_profiles
                .get(profile_id)
                .map_or("is not in the profile listing".to_owned(), |r| {
                    format!("was rejected: {r}")
                });
            return Outcome::Rejected(reject(format!("its profile '{profile_id}' {why}")));
        };
        let Some(artifact) = &indicator.artifact else {
            return Outcome::Rejected(reject(
                "indicator has no artifact (missing, null or empty)".into(),
            ));
        };
        let (observable, value) = match classify(artifact, &self.ctx.mappings) {
            Classified::Value(observable, value) => (observable, value),
            Classified::Skip(reason) => {
                return Outcome::Skipped(Rejection {
                    record: RecordKind::Indicator,
                    ..reject(reason)
                });
            }
            Classified::Reject(reason) => return Outcome::Rejected(reject(reason)),
        };
        let Some((created, modified)) = occurrence_dates(
            indicator.first_seen,
            indicator.last_seen,
            profile.first_active,
        ) else {
            return Outcome::Rejected(reject(
                "no firstSeenDateTime or lastSeenDateTime, and its profile has no firstActiveDateTime: STIX needs valid_from".into(),
            ));
        };
        let (sequence, profile_ref) = (profile.sequence, profile.indicated_ref.clone());
        let key = uuid_key(&crate::indicator::indicator_id(observable, &value)).unwrap_or_default();
        let (facts, first, new_relationship) = match self.indicators.get_mut(&key) {
            Some(entry) => {
                let new_relationship = entry.last_profile != sequence;
                entry.last_profile = sequence;
                (entry.facts.clone(), false, new_relationship)
            }
            None => {
                let facts = IndicatorFacts::new(
                    observable,
                    created,
                    modified,
                    indicator.source.clone(),
                    host,
                    &self.ctx,
                );
                self.indicators.insert(
                    key,
                    IndicatorEntry {
                        facts: facts.clone(),
                        last_profile: sequence,
                    },
                );
                (facts, true, true)
            }
        };
        let indicator_stix = indicator_object(observable, &value, &facts, &self.ctx);
        let mut objects = Vec::with_capacity(4);
        if self.ctx.options.observables {
            for object in observable_objects(
                observable,
                &value,
                &indicator_stix,
                facts.host.as_deref(),
                &self.ctx,
            ) {
                // An autonomous system is shared by many addresses: emitted once per run.
                let first = if object.id().starts_with("autonomous-system--") {
                    self.first_time(&object)
                } else {
                    first
                };
                objects.push(Emitted {
                    object: EncodedObject::encode(&object),
                    first,
                    version: Version::default(),
                });
            }
        }
        let relationship = indicates(
            indicator_stix.id(),
            &profile_ref,
            &indicator.id,
            created,
            modified,
            &self.ctx,
        );
        let stix_id = indicator_stix.id().to_owned();
        objects.insert(
            0,
            Emitted {
                object: EncodedObject::encode(&indicator_stix),
                first,
                version: Version::default(),
            },
        );
        objects.push(Emitted {
            object: EncodedObject::encode(&relationship),
            first: new_relationship,
            version: Version::default(),
        });
        let confidence = facts.confidence(&self.ctx);
        Outcome::Mapped(Mapped::Indicator(MappedIndicator {
            indicator_id: indicator.id,
            profile_id: profile_id.to_owned(),
            observable_type: observable,
            value,
            source: indicator.source,
            first_seen: indicator.first_seen,
            last_seen: indicator.last_seen,
            confidence: Some(confidence),
            host: facts.host.clone(),
            stix_id,
            objects,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{indicator, mapped, mappings, profile};
    use serde_json::json;

    fn mapper(options: MappingOptions) -> Mapper {
        Mapper::new(options, mappings()).unwrap()
    }

    fn types(m: &Mapped) -> Vec<String> {
        m.objects()
            .iter()
            .map(|e| e.object.object_type.to_string())
            .collect()
    }

    #[test]
    fn an_actor_becomes_a_threat_actor_with_its_context() {
        let mut mapper = mapper(MappingOptions::default());
        let m = mapped(mapper.map(profile("p1", "actor")));
        assert_eq!(
            types(&m),
            [
                "threat-actor",
                "relationship",
                "location",
                "relationship",
                "identity",
                "note",
                "report"
            ]
        );
        let report: serde_json::Value = serde_json::from_str(&m.objects()[6].object.json).unwrap();
        assert_eq!(
            report["object_refs"],
            json!([
                m.objects()[0].object.id.as_ref(),
                m.objects()[5].object.id.as_ref()
            ])
        );
        assert_eq!(report["report_types"], json!(["threat-actor"]));
        let actor: serde_json::Value = serde_json::from_str(&m.objects()[0].object.json).unwrap();
        assert_eq!(actor["aliases"], json!(["A"]));
        let note: serde_json::Value = serde_json::from_str(&m.objects()[5].object.json).unwrap();
        assert_eq!(note["content"], "Uses\nphishing");
    }

    #[test]
    fn both_links_intrusion_set_to_threat_actor() {
        let mut mapper = mapper(MappingOptions {
            actor_as: crate::options::ActorAs::Both,
            ..MappingOptions::default()
        });
        let Mapped::Profile(p) = mapped(mapper.map(profile("p1", "actor"))) else {
            panic!()
        };
        assert!(p.indicated_ref.starts_with("intrusion-set--"));
        let kinds: Vec<_> = p
            .objects
            .iter()
            .map(|e| e.object.object_type.to_string())
            .collect();
        assert_eq!(
            &kinds[..3],
            ["intrusion-set", "threat-actor", "relationship"]
        );
    }

    #[test]
    fn unknown_kinds_are_rejected_and_so_are_their_indicators() {
        let mut mapper = mapper(MappingOptions::default());
        assert!(
            matches!(mapper.map(profile("p9", "campaign")), Outcome::Rejected(r) if r.reason.contains("unknown profile kind"))
        );
        let outcome = mapper.map(indicator(
            "p9",
            "i1",
            json!({"@odata.type": "#microsoft.graph.security.hostname", "id": "a.example"}),
            "2024-01-01T00:00:00Z",
        ));
        assert!(matches!(outcome, Outcome::Rejected(r) if r.reason.contains("p9") && r.id == "i1"));
    }

    #[test]
    fn a_shared_indicator_is_one_object_with_one_relationship_per_profile() {
        let mut mapper = mapper(MappingOptions {
            observables: true,
            ..MappingOptions::default()
        });
        let host =
            json!({"@odata.type": "#microsoft.graph.security.hostname", "id": "EVIL.example.com."});
        mapper.map(profile("p1", "actor"));
        let first = mapped(mapper.map(indicator("p1", "i1", host.clone(), "2024-01-01T00:00:00Z")));
        let again_same_profile =
            mapped(mapper.map(indicator("p1", "i2", host.clone(), "2023-01-01T00:00:00Z")));
        let second_profile = mapped(mapper.map(profile("p2", "tool")));
        let other = mapped(mapper.map(indicator("p2", "i3", host, "2022-01-01T00:00:00Z")));
        assert!(first.objects().iter().all(|e| e.first));
        assert!(again_same_profile.objects().iter().all(|e| !e.first));
        assert!(second_profile.objects().iter().any(|e| e.first));
        let firsts: Vec<_> = other
            .objects()
            .iter()
            .map(|e| (e.object.object_type.to_string(), e.first))
            .collect();
        assert_eq!(
            firsts,
            [
                ("indicator".into(), false),
                ("domain-name".into(), false),
                ("relationship".into(), false),
                ("relationship".into(), true)
            ]
        );
        // The repeat is byte-identical to the first emission, whatever the later occurrence's dates.
        assert_eq!(first.objects()[0].object, other.objects()[0].object);
    }

    #[test]
    fn skips_and_rejects_carry_the_indicator_id() {
        let mut mapper = mapper(MappingOptions::default());
        mapper.map(profile("p1", "actor"));
        let skipped = mapper.map(indicator(
            "p1",
            "c1",
            json!({"@odata.type": "#microsoft.graph.security.hostCookie", "id": "Y29va2ll"}),
            "2024-01-01T00:00:00Z",
        ));
        assert!(matches!(skipped, Outcome::Skipped(r) if r.id == "c1"));
        let rejected = mapper.map(indicator(
            "p1",
            "b1",
            json!({"@odata.type": "#microsoft.graph.security.ipAddress", "id": "999.1.2.3"}),
            "2024-01-01T00:00:00Z",
        ));
        assert!(
            matches!(rejected, Outcome::Rejected(r) if r.id == "b1" && r.reason.contains("IP"))
        );
        let empty = mapper.map(indicator("p1", "e1", json!({}), "2024-01-01T00:00:00Z"));
        assert!(matches!(empty, Outcome::Rejected(r) if r.reason.contains("artifact")));
    }

    #[test]
    fn mapping_is_deterministic() {
        let run = || {
            let mut mapper = mapper(MappingOptions {
                observables: true,
                ..MappingOptions::default()
            });
            let mut jsons: Vec<String> = mapper
                .preamble()
                .into_iter()
                .map(|o| o.json.to_string())
                .collect();
            for record in [
                profile("p1", "actor"),
                indicator(
                    "p1",
                    "i1",
                    json!({"@odata.type": "#microsoft.graph.security.unclassifiedArtifact", "kind": "url", "value": "http://x.example/it's\\"}),
                    "2024-01-01T00:00:00.5Z",
                ),
            ] {
                jsons.extend(
                    mapped(mapper.map(record))
                        .objects()
                        .iter()
                        .map(|e| e.object.json.to_string()),
                );
            }
            jsons
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn enrichment_sets_confidence_labels_and_a_shared_autonomous_system_once() {
        use ctiport_model::host::{HostFacts, Reputation};
        let mut mapper = mapper(MappingOptions {
            observables: true,
            ..MappingOptions::default()
        });
        mapper.map(profile("p1", "actor"));
        let host = |address: &str| {
            Some(Arc::new(HostFacts {
                host: address.into(),
                asn: Some(64500),
                as_name: Some("EXAMPLE-AS".into()),
                reputation: Some(Reputation {
                    classification: "malicious".into(),
                    score: 97,
                    rules: Vec::new(),
                }),
                ..HostFacts::default()
            }))
        };
        let record = |id: &str, address: &str| SourceRecord::Indicator {
            profile_id: "p1".into(),
            indicator: ProfileIndicator::from_json(
                json!({"id": id, "source": "osint", "firstSeenDateTime": "2024-01-01T00:00:00Z",
                "artifact": {"@odata.type": "#microsoft.graph.security.ipAddress", "id": address}}),
            )
            .unwrap(),
            host: host(address),
        };
        let first = mapped(mapper.map(record("i1", "198.51.100.1")));
        let second = mapped(mapper.map(record("i2", "198.51.100.2")));
        let indicator: serde_json::Value =
            serde_json::from_str(&first.objects()[0].object.json).unwrap();
        assert_eq!(indicator["confidence"], 97);
        assert!(
            indicator["labels"]
                .as_array()
                .unwrap()
                .contains(&json!("reputation-malicious"))
        );
        assert!(
            indicator["description"]
                .as_str()
                .unwrap()
                .contains("ASN: AS64500 (EXAMPLE-AS)")
        );
        let autonomous_systems = |m: &Mapped| -> Vec<bool> {
            m.objects()
                .iter()
                .filter(|e| &*e.object.object_type == "autonomous-system")
                .map(|e| e.first)
                .collect()
        };
        assert_eq!(autonomous_systems(&first), [true]);
        assert_eq!(autonomous_systems(&second), [false]);
    }
}
