//! The records that flow between stages: what a source yields, and what the mapping hands to
//! every sink.

use std::sync::Arc;

use crate::graph::{IndicatorSource, IntelProfile, ProfileIndicator, ProfileKind};
use crate::host::HostFacts;
use crate::stix::EncodedObject;
use crate::timestamp::Timestamp;

/// What a source yields, in order: each profile, then that profile's indicators.
#[derive(Clone, Debug)]
pub enum SourceRecord {
    Profile(IntelProfile),
    Indicator {
        profile_id: String,
        indicator: ProfileIndicator,
        /// Enrichment of the indicator's host (`--enrich`), looked up once per host per run.
        host: Option<Arc<HostFacts>>,
    },
    /// A record the source could not parse; the rest of the run goes on.
    Rejected(Rejection),
    /// A profile the source left out because of `--kind`/`--profile`, without reading its
    /// indicators; counted in the run summary.
    Filtered(Filtered),
}

/// What kind of record a rejection or skip is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    Profile,
    Indicator,
    /// A line or file that could not even be read as a record.
    Line,
    File,
}

/// The filter that left a record out, named after its option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterKind {
    /// `--profile <id>`
    Profile,
    /// `--kind actor|tool`
    Kind,
    /// `--source microsoft|osint|public`
    Source,
    /// `--artifact-type <type>`
    ArtifactType,
    /// `--seen-since <date>`
    SeenSince,
    /// `--min-reputation <score>`
    MinReputation,
}

impl FilterKind {
    pub const ALL: [FilterKind; 6] = [
        FilterKind::Profile,
        FilterKind::Kind,
        FilterKind::Source,
        FilterKind::ArtifactType,
        FilterKind::SeenSince,
        FilterKind::MinReputation,
    ];

    /// The option's name without dashes, as the run summary reports it.
    pub fn as_str(&self) -> &'static str {
        match self {
            FilterKind::Profile => "profile",
            FilterKind::Kind => "kind",
            FilterKind::Source => "source",
            FilterKind::ArtifactType => "artifact-type",
            FilterKind::SeenSince => "seen-since",
            FilterKind::MinReputation => "min-reputation",
        }
    }
}

/// A record a filter left out: counted in the run summary, neither exported nor an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filtered {
    pub id: String,
    pub record: RecordKind,
    pub by: FilterKind,
}

/// A record that was not exported, with its id and the reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub id: String,
    pub record: RecordKind,
    pub reason: String,
}

/// An encoded STIX object and whether this run emits it for the first time. The same indicator
/// found in a second profile is handed on again (`first == false`) together with its new
/// `indicates` relationship, so that a chunked writer can keep every chunk self-contained while a
/// single-bundle writer skips it.
#[derive(Clone, Debug)]
pub struct Emitted {
    pub object: EncodedObject,
    /// In the mapping's records: the run meets the object here for the first time. In the record
    /// a sink is given (the state store's `View` of it): that sink is to write the object; the
    /// others are context.
    pub first: bool,
    /// Where this version of the object stands in the state store (`--state`); all zero without
    /// one, when every run delivers everything.
    pub version: Version,
}

/// The runs of the state store that made an object's current version and its first one. A sink
/// that has acknowledged run `n` already holds every version with `run <= n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    /// The run that produced this version (its content hash, `created` and `modified`).
    pub run: u32,
    /// The run that first produced the object: tells a sink's new object from a changed one.
    pub origin: u32,
}

/// A revoked object: the last version of something the source no longer lists, re-issued with
/// `revoked: true` and a later `modified` (reference `stix-taxii.md` §3.5).
#[derive(Clone, Debug)]
pub struct Revocation {
    pub object: Emitted,
    /// For an `indicates` relationship: the profile membership it ended, for the sinks that speak
    /// in indicators rather than STIX (MISP marks the attribute deleted, CSV writes a revoke row).
    pub membership: Option<Membership>,
}

/// An indicator's place in one profile, as the state store remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub profile_id: String,
    pub indicator_stix_id: String,
    pub observable_type: ObservableType,
    pub value: String,
}

/// A mapped profile: its SDOs, locations, sectors, relationships and note.
#[derive(Clone, Debug)]
pub struct MappedProfile {
    pub profile_id: String,
    pub title: String,
    pub kind: ProfileKind,
    /// The STIX id indicators point their `indicates` relationships at.
    pub indicated_ref: String,
    /// The source record, for sinks that describe a profile in their own terms (MISP events,
    /// CSV rows) rather than as STIX.
    pub profile: Arc<IntelProfile>,
    pub objects: Vec<Emitted>,
}

/// The observable type an indicator value was classified as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservableType {
    Domain,
    Ipv4,
    Ipv6,
    Ipv4Cidr,
    Ipv6Cidr,
    Url,
    Email,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    X509Sha1,
}

impl ObservableType {
    pub const ALL: [ObservableType; 12] = [
        ObservableType::Domain,
        ObservableType::Ipv4,
        ObservableType::Ipv6,
        ObservableType::Ipv4Cidr,
        ObservableType::Ipv6Cidr,
        ObservableType::Url,
        ObservableType::Email,
        ObservableType::Md5,
        ObservableType::Sha1,
        ObservableType::Sha256,
        ObservableType::Sha512,
        ObservableType::X509Sha1,
    ];

    /// The name used in mapping tables and outputs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ObservableType::Domain => "domain",
            ObservableType::Ipv4 => "ipv4",
            ObservableType::Ipv6 => "ipv6",
            ObservableType::Ipv4Cidr => "ipv4-cidr",
            ObservableType::Ipv6Cidr => "ipv6-cidr",
            ObservableType::Url => "url",
            ObservableType::Email => "email",
            ObservableType::Md5 => "md5",
            ObservableType::Sha1 => "sha1",
            ObservableType::Sha256 => "sha256",
            ObservableType::Sha512 => "sha512",
            ObservableType::X509Sha1 => "x509-sha1",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// A mapped indicator occurrence (one Graph indicator of one profile), with the typed facts that
/// non-STIX sinks (CSV, MISP) need so that none of them re-parses a STIX pattern.
#[derive(Clone, Debug)]
pub struct MappedIndicator {
    pub indicator_id: String,
    pub profile_id: String,
    pub observable_type: ObservableType,
    /// The normalized value (lower-cased domain, canonical IP, lower-case hash, …).
    pub value: String,
    pub source: Option<IndicatorSource>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub confidence: Option<u8>,
    /// Host enrichment, when `--enrich` found any.
    pub host: Option<Arc<HostFacts>>,
    pub stix_id: String,
    pub objects: Vec<Emitted>,
}

/// What the mapping hands to every sink.
#[derive(Clone, Debug)]
pub enum Mapped {
    Profile(MappedProfile),
    Indicator(MappedIndicator),
    /// Sent at the end of a run with a state store, after the source's records.
    Revoked(Revocation),
}

impl Mapped {
    pub fn objects(&self) -> &[Emitted] {
        match self {
            Mapped::Profile(p) => &p.objects,
            Mapped::Indicator(i) => &i.objects,
            Mapped::Revoked(r) => std::slice::from_ref(&r.object),
        }
    }

    pub fn objects_mut(&mut self) -> &mut [Emitted] {
        match self {
            Mapped::Profile(p) => &mut p.objects,
            Mapped::Indicator(i) => &mut i.objects,
            Mapped::Revoked(r) => std::slice::from_mut(&mut r.object),
        }
    }
}
