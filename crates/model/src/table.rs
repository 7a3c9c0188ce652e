//! Mapping tables: JSON files with a JSON Schema each, embedded in the binary and replaceable one
//! by one from a user's directory (`--mappings <dir>`).
//!
//! A user's table is validated against its schema when it is loaded, and a bad one is reported
//! with the file and the field. The embedded tables are fixed at build time, so they are
//! validated by the test suite instead of at every start (compiling a schema validator costs
//! megabytes and milliseconds that a nightly run should not pay for nothing).

use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TableError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON: {source}")]
    Json {
        file: PathBuf,
        source: serde_json::Error,
    },
    #[error("{file}: {pointer}: {message}")]
    Schema {
        file: PathBuf,
        pointer: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

/// One table: its file name, its embedded default and its schema.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub file: &'static str,
    pub default: &'static str,
    pub schema: &'static str,
}

/// A table as loaded: where it came from, and its content without the `$comment` member.
pub struct Loaded {
    pub file: PathBuf,
    pub value: Value,
}

impl Table {
    /// The embedded default, or `<dir>/<file>` when that file exists (then schema-validated).
    pub fn load(&self, override_dir: Option<&Path>) -> Result<Loaded, TableError> {
        let (file, value) = match override_dir
            .map(|dir| dir.join(self.file))
            .filter(|path| path.exists())
        {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| TableError::Read {
                    file: path.clone(),
                    source,
                })?;
                let value: Value =
                    serde_json::from_str(&text).map_err(|source| TableError::Json {
                        file: path.clone(),
                        source,
                    })?;
                self.validate(&path, &value)?;
                (path, value)
            }
            None => {
                let file = PathBuf::from("mappings").join(self.file);
                let value =
                    serde_json::from_str(self.default).map_err(|source| TableError::Json {
                        file: file.clone(),
                        source,
                    })?;
                (file, value)
            }
        };
        let value = match value {
            Value::Object(mut map) => {
                map.remove("$comment");
                Value::Object(map)
            }
            other => other,
        };
        Ok(Loaded { file, value })
    }

    /// Checks `instance` against this table's schema; the first error names the field.
    pub fn validate(&self, file: &Path, instance: &Value) -> Result<(), TableError> {
        let invalid = |message: String| TableError::Invalid {
            file: file.to_owned(),
            message,
        };
        let schema: Value = serde_json::from_str(self.schema)
            .map_err(|e| invalid(format!("embedded schema is broken: {e}")))?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| invalid(format!("embedded schema is broken: {e}")))?;
        match validator.iter_errors(instance).next() {
            None => Ok(()),
            Some(error) => {
                let pointer = error.instance_path.to_string();
                Err(TableError::Schema {
                    file: file.to_owned(),
                    pointer: if pointer.is_empty() {
                        "/".into()
                    } else {
                        pointer
                    },
                    message: error.to_string(),
                })
            }
        }
    }

    /// For tests: the embedded default validated against the schema.
    pub fn validate_default(&self) -> Result<(), TableError> {
        let file = PathBuf::from("mappings").join(self.file);
        let value: Value =
            serde_json::from_str(self.default).map_err(|source| TableError::Json {
                file: file.clone(),
                source,
            })?;
        self.validate(&file, &value)
    }
}

/// `serde_json::from_value` with the table's file in the error.
pub fn decode<T: serde::de::DeserializeOwned>(loaded: Loaded) -> Result<T, TableError> {
    serde_json::from_value(loaded.value).map_err(|source| TableError::Invalid {
        file: loaded.file,
        message: source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: Table = Table {
        file: "t.json",
        default: r#"{"$comment": "x", "a": 1}"#,
        schema: r#"{"type": "object", "additionalProperties": {"type": "integer", "maximum": 10}}"#,
    };

    #[test]
    fn defaults_load_without_comment_and_overrides_are_validated() {
        assert_eq!(TABLE.load(None).unwrap().value, serde_json::json!({"a": 1}));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.json"), r#"{"a": 11}"#).unwrap();
        let error = TABLE.load(Some(dir.path())).err().unwrap().to_string();
        assert!(error.contains("t.json") && error.contains("/a"), "{error}");
        std::fs::write(dir.path().join("t.json"), r#"{"a": 2}"#).unwrap();
        assert_eq!(
            TABLE.load(Some(dir.path())).unwrap().value,
            serde_json::json!({"a": 2})
        );
    }
}
