//! The MISP attribute table (`mappings/misp-attributes.json`): which MISP attribute type,
//! category and `to_ids` each indicator value type becomes. Embedded in the binary, replaceable
//! with `--mappings <dir>`, and validated against its JSON Schema when a user replaces it, like the transform's
//! tables (the schema also holds MISP's allowed categories per type, so a table MISP would refuse
//! never loads).

use std::collections::BTreeMap;
use std::path::Path;

use ctiport_model::record::ObservableType;
pub use ctiport_model::table::TableError;
use ctiport_model::table::{Loaded, Table};
use serde::Deserialize;
use serde_json::Value;

use super::normalize::MispType;

/// The table's file name, inside `mappings/` or a `--mappings` directory.
pub const TABLE_FILE: &str = "misp-attributes.json";
const DEFAULT_TABLE: &str = include_str!("../../../../mappings/misp-attributes.json");
const TABLE: Table = Table {
    file: TABLE_FILE,
    default: DEFAULT_TABLE,
    schema: include_str!("../../../../mappings/schemas/misp-attributes.schema.json"),
};

/// What one indicator value type becomes in MISP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeMapping {
    pub misp_type: MispType,
    pub category: String,
    pub to_ids: bool,
}

#[derive(Deserialize)]
struct RawMapping {
    #[serde(rename = "type")]
    misp_type: String,
    category: String,
    to_ids: bool,
}

/// The loaded table: one mapping per observable type, plus the fallback for values MISP would
/// refuse under their mapped type.
#[derive(Clone, Debug)]
pub struct AttributeTable {
    by_type: BTreeMap<&'static str, AttributeMapping>,
    fallback: AttributeMapping,
}

impl AttributeTable {
    /// The embedded table.
    #[cfg(test)]
    pub fn embedded() -> Result<Self, TableError> {
        Self::load(None)
    }

    /// The embedded table, or `<dir>/misp-attributes.json` when that file exists.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, TableError> {
        let Loaded {
            file,
            value: instance,
        } = TABLE.load(override_dir)?;
        let invalid = |message: String| TableError::Invalid {
            file: file.clone(),
            message,
        };
        let mut raw: BTreeMap<String, Value> =
            serde_json::from_value(instance).map_err(|e| invalid(e.to_string()))?;
        let mut convert = |key: &str| -> Result<AttributeMapping, TableError> {
            let value = raw
                .remove(key)
                .ok_or_else(|| invalid(format!("no entry for '{key}'")))?;
            let entry: RawMapping =
                serde_json::from_value(value).map_err(|e| invalid(format!("/{key}: {e}")))?;
            let misp_type = MispType::parse(&entry.misp_type).ok_or_else(|| {
                invalid(format!(
                    "/{key}/type: unsupported MISP type '{}'",
                    entry.misp_type
                ))
            })?;
            Ok(AttributeMapping {
                misp_type,
                category: entry.category,
                to_ids: entry.to_ids,
            })
        };
        let mut by_type = BTreeMap::new();
        for observable in ObservableType::ALL {
            by_type.insert(observable.as_str(), convert(observable.as_str())?);
        }
        let fallback = convert("fallback")?;
        Ok(AttributeTable { by_type, fallback })
    }

    /// The mapping of an observable type (every type has one: the schema requires it).
    pub fn mapping(&self, observable: ObservableType) -> &AttributeMapping {
        self.by_type
            .get(observable.as_str())
            .unwrap_or(&self.fallback)
    }

    /// The mapping used for a value MISP would refuse under its mapped type.
    pub fn fallback(&self) -> &AttributeMapping {
        &self.fallback
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;

    /// The embedded table is not schema-checked at start-up; this is where it is.
    #[test]
    fn the_embedded_table_matches_its_schema() {
        TABLE.validate_default().unwrap();
    }

    #[test]
    fn the_embedded_table_covers_every_value_type() {
        let table = AttributeTable::embedded().unwrap();
        assert_eq!(
            table.mapping(ObservableType::Ipv4Cidr).misp_type,
            MispType::IpDst
        );
        assert_eq!(
            table.mapping(ObservableType::X509Sha1).misp_type,
            MispType::X509FingerprintSha1
        );
        assert_eq!(
            table.mapping(ObservableType::Sha256).category,
            "Payload delivery"
        );
        assert!(table.mapping(ObservableType::Domain).to_ids);
        assert_eq!(table.fallback().misp_type, MispType::Text);
        assert!(!table.fallback().to_ids);
    }

    fn override_with(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TABLE_FILE), text).unwrap();
        AttributeTable::load(Some(dir.path()))
            .unwrap_err()
            .to_string()
    }

    fn embedded_with(pointer: &str, value: Value) -> String {
        let mut table: Value = serde_json::from_str(DEFAULT_TABLE).unwrap();
        *table.pointer_mut(pointer).unwrap() = value;
        table.to_string()
    }

    #[test]
    fn a_category_misp_would_refuse_names_the_file_and_the_field() {
        let error = override_with(&embedded_with("/ipv4/category", "Attribution".into()));
        assert!(error.contains(TABLE_FILE), "{error}");
        assert!(error.contains("/ipv4/category"), "{error}");
    }

    #[test]
    fn a_type_that_cannot_hold_the_value_is_refused() {
        let error = override_with(&embedded_with("/md5/type", "domain".into()));
        assert!(error.contains("/md5/type"), "{error}");
    }

    #[test]
    fn a_missing_entry_and_broken_json_are_refused() {
        let mut table: Value = serde_json::from_str(DEFAULT_TABLE).unwrap();
        table.as_object_mut().unwrap().remove("url");
        let error = override_with(&table.to_string());
        assert!(error.contains("url"), "{error}");
        let error = override_with("{not json");
        assert!(error.contains("not valid JSON"), "{error}");
    }

    #[test]
    fn an_override_replaces_the_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(TABLE_FILE),
            embedded_with("/domain/type", "hostname".into()),
        )
        .unwrap();
        let table = AttributeTable::load(Some(dir.path())).unwrap();
        assert_eq!(
            table.mapping(ObservableType::Domain).misp_type,
            MispType::Hostname
        );
    }
}
