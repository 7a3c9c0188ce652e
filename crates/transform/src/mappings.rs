//! The mapping tables that drive the transform (`mappings/*.json`), validated against their JSON
//! Schemas at load. Defaults are embedded in the binary; `--mappings <dir>` replaces any table found
//! in that directory, table by table.

use std::collections::BTreeMap;
use std::path::Path;

use ctiport_model::record::ObservableType;
use ctiport_model::table::{Table, TableError, decode};
use serde::Deserialize;
use serde_json::Value;

/// A mapping table that could not be loaded; names the file and, for schema errors, the field.
pub type MappingError = TableError;

/// How an artifact type becomes an indicator value.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "handling", rename_all = "kebab-case")]
pub enum ArtifactHandling {
    Hostname,
    /// The abstract `host` type: an IP address or a host name, decided by the value.
    Host,
    Ip,
    X509Sha1,
    Unclassified,
    Skip {
        reason: String,
    },
}

/// What an `unclassifiedArtifact.kind` says its value is.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum UnclassifiedKind {
    Url,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    /// A file hash of unstated algorithm: chosen by length.
    Hash,
    Email,
    Domain,
    /// An address or a CIDR range.
    Ip,
    Sniff,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SectorTable {
    pub exact: BTreeMap<String, Vec<String>>,
    pub prefix: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SourceMapping {
    pub confidence: u8,
    pub labels: Vec<String>,
    pub indicator_types: Vec<String>,
}

/// All tables, loaded and validated.
#[derive(Clone, Debug)]
pub struct Mappings {
    artifact_types: BTreeMap<String, ArtifactHandling>,
    unclassified_kinds: BTreeMap<String, UnclassifiedKind>,
    sectors: SectorTable,
    sources: BTreeMap<String, SourceMapping>,
    ttl_days: BTreeMap<String, Option<u32>>,
    /// set name → TLP level → marking-definition object.
    markings: BTreeMap<String, BTreeMap<String, Value>>,
}

macro_rules! table {
    ($name:literal) => {
        Table {
            file: concat!($name, ".json"),
            default: include_str!(concat!("../../../mappings/", $name, ".json")),
            schema: include_str!(concat!("../../../mappings/schemas/", $name, ".schema.json")),
        }
    };
}

const ARTIFACT_TYPES: Table = table!("artifact-types");
const UNCLASSIFIED_KINDS: Table = table!("unclassified-kinds");
const SECTORS: Table = table!("sectors");
const SOURCES: Table = table!("sources");
const TTL: Table = table!("ttl");
const MARKINGS: Table = table!("markings");

/// The key form tables use for free-text keys: lower-case ASCII letters and digits only.
pub fn table_key(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Mappings {
    /// The tables embedded in the binary.
    pub fn embedded() -> Result<Self, MappingError> {
        Self::load(None)
    }

    /// The embedded tables, each replaced by `<dir>/<table>.json` when that file exists.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, MappingError> {
        let artifact_types: BTreeMap<String, ArtifactHandling> =
            load_table(&ARTIFACT_TYPES, override_dir)?;
        let unclassified_kinds: BTreeMap<String, UnclassifiedKind> =
            load_table(&UNCLASSIFIED_KINDS, override_dir)?;
        let mappings = Mappings {
            artifact_types: artifact_types
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            unclassified_kinds: unclassified_kinds
                .into_iter()
                .map(|(k, v)| (table_key(&k), v))
                .collect(),
            sectors: load_table(&SECTORS, override_dir)?,
            sources: load_table(&SOURCES, override_dir)?,
            ttl_days: load_table(&TTL, override_dir)?,
            markings: load_table(&MARKINGS, override_dir)?,
        };
        Ok(mappings)
    }

    pub fn artifact_handling(&self, type_name: &str) -> Option<&ArtifactHandling> {
        self.artifact_types.get(type_name)
    }

    pub fn unclassified_kind(&self, kind: &str) -> UnclassifiedKind {
        self.unclassified_kinds
            .get(&table_key(kind))
            .copied()
            .unwrap_or(UnclassifiedKind::Sniff)
    }

    /// Sectors for an MDTI target string: an exact match, else a match on the part before `:`.
    pub fn sectors_for(&self, target: &str) -> Vec<String> {
        let find = |table: &BTreeMap<String, Vec<String>>, key: &str| {
            table
                .iter()
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(key.trim()))
                .map(|(_, v)| v.clone())
        };
        find(&self.sectors.exact, target)
            .or_else(|| {
                target
                    .split_once(':')
                    .and_then(|(prefix, _)| find(&self.sectors.prefix, prefix))
            })
            .or_else(|| find(&self.sectors.prefix, target))
            .unwrap_or_default()
    }

    /// Confidence, labels and indicator types for an indicator source (`None` = unknown).
    pub fn source(&self, source: Option<&str>) -> &SourceMapping {
        source
            .and_then(|s| self.sources.get(s))
            .or_else(|| self.sources.get("default"))
            .unwrap_or(&FALLBACK_SOURCE)
    }

    pub fn ttl_days(&self, observable: ObservableType) -> Option<u32> {
        self.ttl_days.get(observable.as_str()).copied().flatten()
    }

    /// The marking-definition object for a TLP level in a marking set.
    pub fn marking(&self, set: &str, level: &str) -> Result<&Value, String> {
        let levels = self.markings.get(set).ok_or_else(|| {
            format!(
                "unknown marking set '{set}' (known: {})",
                self.markings.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        levels.get(level).ok_or_else(|| {
            format!(
                "marking set '{set}' has no TLP:{} (it has: {})",
                level.to_uppercase(),
                levels.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

/// Used only if a user's `sources.json` were to lack `default`, which its schema forbids.
static FALLBACK_SOURCE: SourceMapping = SourceMapping {
    confidence: 0,
    labels: Vec::new(),
    indicator_types: Vec::new(),
};

fn load_table<T: serde::de::DeserializeOwned>(
    table: &Table,
    override_dir: Option<&Path>,
) -> Result<T, MappingError> {
    decode(table.load(override_dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded tables are not schema-checked at start-up; this is where they are.
    #[test]
    fn embedded_tables_match_their_schemas() {
        for table in [
            ARTIFACT_TYPES,
            UNCLASSIFIED_KINDS,
            SECTORS,
            SOURCES,
            TTL,
            MARKINGS,
        ] {
            table.validate_default().unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn embedded_tables_load() {
        let mappings = Mappings::embedded().unwrap();
        assert_eq!(
            mappings.artifact_handling("hostname"),
            Some(&ArtifactHandling::Hostname)
        );
        assert!(matches!(
            mappings.artifact_handling("hostcookie"),
            Some(ArtifactHandling::Skip { .. })
        ));
        assert_eq!(
            mappings.unclassified_kind("File Hash"),
            UnclassifiedKind::Hash
        );
        assert_eq!(
            mappings.unclassified_kind("never-heard-of-it"),
            UnclassifiedKind::Sniff
        );
        assert_eq!(
            mappings.sectors_for("Government Agencies & Services: Defense"),
            vec!["defense", "government-national"]
        );
        assert_eq!(
            mappings.sectors_for("financial services: Banking"),
            vec!["financial-services"]
        );
        assert!(mappings.sectors_for("Underwater Basket Weaving").is_empty());
        assert_eq!(mappings.source(Some("microsoft")).confidence, 85);
        assert_eq!(
            mappings.source(Some("unheard")).labels,
            mappings.source(None).labels
        );
        assert_eq!(mappings.ttl_days(ObservableType::Ipv4), Some(30));
        assert_eq!(mappings.ttl_days(ObservableType::Sha256), None);
        assert!(mappings.marking("tlp1", "amber+strict").is_err());
        assert!(mappings.marking("tlp2", "amber+strict").is_ok());
    }

    #[test]
    fn a_bad_override_names_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sources.json"),
            r#"{"default": {"confidence": 150, "labels": [], "indicator_types": []}}"#,
        )
        .unwrap();
        let error = Mappings::load(Some(dir.path())).unwrap_err().to_string();
        assert!(error.contains("sources.json"), "{error}");
        assert!(error.contains("/default/confidence"), "{error}");
    }

    #[test]
    fn an_override_replaces_only_its_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ttl.json"), r#"{"ipv4": 7}"#).unwrap();
        let mappings = Mappings::load(Some(dir.path())).unwrap();
        assert_eq!(mappings.ttl_days(ObservableType::Ipv4), Some(7));
        assert_eq!(mappings.ttl_days(ObservableType::Domain), None);
        assert_eq!(mappings.source(Some("microsoft")).confidence, 85);
    }

    #[test]
    fn broken_json_is_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sectors.json"), "{not json").unwrap();
        let error = Mappings::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            error.contains("sectors.json") && error.contains("not valid JSON"),
            "{error}"
        );
    }
}
