//! `ctiport export --config <file.toml>`: the options of an export in a TOML file.
//!
//! The file is read in four steps, and any mistake is a usage error (exit 2) naming the file and
//! the key (`ctiport.toml: sinks[1].csv_columns: …`):
//!
//! 1. TOML → a JSON value (TOML dates become their text, so `seen_since = 2025-01-01` works);
//! 2. every string written `${NAME}` is replaced by the environment variable NAME — except at
//!    the secret keys, which must be such references and are checked as written;
//! 3. the document is validated against `config/ctiport.schema.json` (embedded), in which every
//!    object forbids unknown keys but a `[[sinks]]` table, whose keys its sink checks (the sink
//!    kinds declare their options; see `ctiport-sink`);
//! 4. the secrets are resolved, and the document is decoded into [`Config`].
//!
//! [`merge::apply`] then fills the command line's options from it: whatever the command line (or
//! an option's environment variable) gives wins. A sink's own table is laid under the command
//! line by the sink itself, when it is opened.

mod merge;

use std::fmt;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use ctiport_net::Secret;
use ctiport_sink::SinkTable;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::args::{ActorAsArg, KindArg, LogFormat, LogLevel, SourceArg, TlpArg};

pub use merge::{FromFile, apply};

/// The schema every config file is validated against (draft 2020-12).
pub const SCHEMA: &str = include_str!("../../../config/ctiport.schema.json");

/// Why a secret written in the file is refused (the value is never shown).
const SECRET_IN_FILE: &str = "a secret is never written in the file: write a reference to an \
                              environment variable that holds it, such as \"${MY_SECRET}\"";

/// A config file, decoded. Every option is optional: absent ones keep the command line's value
/// or its default.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub source: SourceSection,
    pub enrich: EnrichSection,
    pub filters: FiltersSection,
    pub mapping: MappingSection,
    pub sinks: Vec<SinkTable>,
    pub summary: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub logging: LoggingSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSection {
    pub from: Option<String>,
    pub graph: GraphSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSection {
    pub graph_url: Option<String>,
    pub authority_url: Option<String>,
    pub rate: Option<f64>,
    pub concurrency: Option<u16>,
    pub page_size: Option<u32>,
    pub request_timeout: Option<u64>,
    pub max_pages: Option<usize>,
    pub max_attempts: Option<u32>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichSection {
    pub hosts: Option<bool>,
    pub reputation: Option<bool>,
    pub max: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FiltersSection {
    #[serde(deserialize_with = "value_enum")]
    pub kind: Option<KindArg>,
    pub profiles: Option<Vec<String>>,
    #[serde(deserialize_with = "value_enums")]
    pub sources: Option<Vec<SourceArg>>,
    pub artifact_types: Option<Vec<String>>,
    pub seen_since: Option<String>,
    pub min_reputation: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingSection {
    #[serde(deserialize_with = "value_enum")]
    pub actor_as: Option<ActorAsArg>,
    pub aliases: Option<bool>,
    pub observables: Option<bool>,
    #[serde(deserialize_with = "value_enum")]
    pub tlp: Option<TlpArg>,
    pub marking_set: Option<String>,
    pub producer_name: Option<String>,
    pub mappings_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    #[serde(deserialize_with = "value_enum")]
    pub format: Option<LogFormat>,
    #[serde(deserialize_with = "value_enum")]
    pub level: Option<LogLevel>,
    pub progress: Option<bool>,
}

/// A place in the document: `sinks[1].csv_columns`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    fn child(&self, segment: Segment) -> KeyPath {
        let mut path = self.clone();
        path.0.push(segment);
        path
    }

    fn key(&self, key: &str) -> KeyPath {
        self.child(Segment::Key(key.to_owned()))
    }

    /// Whether the value here is a secret: only `${NAME}` is accepted there, and the value read
    /// from the environment is never shown. The Graph source's `client_secret`, and the keys the
    /// sink kinds declare secret.
    fn is_secret(&self) -> bool {
        match self.0.as_slice() {
            [Segment::Key(source), Segment::Key(graph), Segment::Key(key)]
                if source == "source" && graph == "graph" =>
            {
                key == "client_secret"
            }
            [Segment::Key(sinks), Segment::Index(_), Segment::Key(key)] if sinks == "sinks" => {
                ctiport_sink::secret_keys().any(|secret| secret == key)
            }
            _ => false,
        }
    }

    /// The path of a JSON pointer into `document` (array indices told apart by the document).
    fn from_pointer(document: &Value, pointer: &str) -> KeyPath {
        let mut path = KeyPath::default();
        let mut node = Some(document);
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            match (node, token.parse::<usize>()) {
                (Some(Value::Array(items)), Ok(index)) => {
                    node = items.get(index);
                    path.0.push(Segment::Index(index));
                }
                _ => {
                    node = node.and_then(|n| n.get(&token));
                    path.0.push(Segment::Key(token));
                }
            }
        }
        path
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One mistake in a config file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub key: KeyPath,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.0.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Reads, checks and decodes the config file at `path`; environment variables through `env`.
/// The error names the file and, line by line, every key at fault.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{shown}: cannot read the config file: {e}"))?;
    parse(&text, env).map_err(|problems| {
        problems
            .iter()
            .map(|problem| format!("{shown}: {problem}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// [`load`] on the text of a config file.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
    let problem = |message: String| {
        vec![Problem {
            key: KeyPath::default(),
            message,
        }]
    };
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| problem(format!("not valid TOML: {}", e.to_string().trim_end())))?;
    let mut document =
        json_of(toml::Value::Table(table), &KeyPath::default()).map_err(|p| vec![p])?;

    // References everywhere but at the secret keys, which the schema checks as written.
    let mut problems = Vec::new();
    resolve(
        &mut document,
        &KeyPath::default(),
        env,
        false,
        &mut problems,
    );
    let unresolved: Vec<KeyPath> = problems.iter().map(|p| p.key.clone()).collect();
    let mut checked = validate(&document).map_err(problem)?;
    checked.extend(check_sinks(&document));
    problems.extend(checked.into_iter().filter(|p| !unresolved.contains(&p.key)));
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(problems);
    }
    resolve(&mut document, &KeyPath::default(), env, true, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(document).map_err(|e| problem(format!("cannot be decoded: {e}")))
}

/// TOML → JSON. Dates and times become their TOML text.
fn json_of(value: toml::Value, path: &KeyPath) -> Result<Value, Problem> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(x) => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| Problem {
                key: path.clone(),
                message: format!("{x} is not a finite number"),
            })?,
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| json_of(item, &path.child(Segment::Index(i))))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, item)| {
                    let value = json_of(item, &path.key(&key))?;
                    Ok((key, value))
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// `NAME` when `text` is a reference `${NAME}`.
fn reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some(name)
}

/// Replaces `${NAME}` strings by the variable's value: at the secret keys only (`secrets`), or
/// everywhere else. A variable that is unset or empty, or `${` inside a longer string, is a
/// problem at that key. Values are never echoed (they may be secrets).
fn resolve(
    value: &mut Value,
    path: &KeyPath,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: bool,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                resolve(item, &path.key(key), env, secrets, problems);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve(item, &path.child(Segment::Index(i)), env, secrets, problems);
            }
        }
        Value::String(text) if path.is_secret() == secrets => match reference(text) {
            Some(name) => match env(name).filter(|v| !v.is_empty()) {
                Some(resolved) => *text = resolved,
                None => problems.push(Problem {
                    key: path.clone(),
                    message: format!("the environment variable {name} is not set (or empty)"),
                }),
            },
            // The schema tells a secret written in the file; nothing else to say here.
            None if text.contains("${") && !secrets => problems.push(Problem {
                key: path.clone(),
                message: "a reference to an environment variable is the whole value, \"${NAME}\", \
                          NAME being letters, digits and _"
                    .into(),
            }),
            None => {}
        },
        _ => {}
    }
}

/// Validates the document against [`SCHEMA`]; every problem names its key.
fn validate(document: &Value) -> Result<Vec<Problem>, String> {
    let schema: Value = serde_json::from_str(SCHEMA)
        .map_err(|e| format!("the embedded config schema is broken: {e}"))?;
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| format!("the embedded config schema is broken: {e}"))?;
    let mut problems = Vec::new();
    for error in validator.iter_errors(document) {
        let path = KeyPath::from_pointer(document, error.instance_path.as_str());
        match &error.kind {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = known_keys(&schema, error.schema_path.as_str());
                for key in unexpected {
                    problems.push(Problem {
                        key: path.key(key),
                        message: match &known {
                            Some(known) => format!("unknown key (expected one of: {known})"),
                            None => "unknown key".into(),
                        },
                    });
                }
            }
            jsonschema::error::ValidationErrorKind::Required { property } => {
                problems.push(Problem {
                    key: path.key(property.as_str().unwrap_or_default()),
                    message: "missing: this key is required".into(),
                });
            }
            _ if path.is_secret() => problems.push(Problem {
                key: path,
                message: SECRET_IN_FILE.into(),
            }),
            jsonschema::error::ValidationErrorKind::Pattern { .. } => problems.push(Problem {
                message: pattern_message(&schema, error.schema_path.as_str(), &path, &error),
                key: path,
            }),
            _ if error.instance.is_object() || error.instance.is_array() => {
                problems.push(Problem {
                    message: error.masked().to_string(),
                    key: path,
                });
            }
            _ => problems.push(Problem {
                message: error.to_string(),
                key: path,
            }),
        }
    }
    Ok(problems)
}

/// What a value that does not match its pattern should be (the regular expressions themselves
/// tell a reader little).
fn pattern_message(
    schema: &Value,
    schema_path: &str,
    path: &KeyPath,
    error: &jsonschema::ValidationError<'_>,
) -> String {
    let text = error.instance.as_str().unwrap_or_default();
    // A pattern reached through `$ref` is named by the definition, else by the key.
    let definition = schema_path
        .strip_suffix("/$ref/pattern")
        .and_then(|node| schema.pointer(node)?.get("$ref")?.as_str());
    let key = match path.0.last() {
        Some(Segment::Key(key)) => key.as_str(),
        _ => "",
    };
    match (definition, key) {
        (Some("#/$defs/text"), _) => "must not be empty".into(),
        (Some("#/$defs/url"), _) => format!("'{text}' is not an absolute URL (https://…)"),
        (None, "from") => format!("'{text}' is not a source: expected \"graph\" or \"dir:<path>\""),
        _ => error.to_string(),
    }
}

/// The keys an object of the schema allows, from the schema location of its
/// `additionalProperties` keyword.
fn known_keys(schema: &Value, keyword: &str) -> Option<String> {
    let object = schema.pointer(keyword.strip_suffix("/additionalProperties")?)?;
    let keys: Vec<&str> = object
        .get("properties")?
        .as_object()?
        .keys()
        .map(String::as_str)
        .collect();
    Some(keys.join(", "))
}

/// What the schema leaves to the sinks: each `[[sinks]]` table's `to`, the keys its sink takes
/// and their values; and that its secrets are references (never shown).
fn check_sinks(document: &Value) -> Vec<Problem> {
    let Some(Value::Array(sinks)) = document.get("sinks") else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (index, table) in sinks.iter().enumerate() {
        let Value::Object(table) = table else {
            continue;
        };
        let path = KeyPath::default().key("sinks").child(Segment::Index(index));
        for (key, value) in table {
            let at = path.key(key);
            if at.is_secret() && value.as_str().and_then(reference).is_none() {
                problems.push(Problem {
                    key: at,
                    message: SECRET_IN_FILE.into(),
                });
            }
        }
        for (key, message) in crate::sinks::check_table(table) {
            problems.push(Problem {
                key: path.key(&key),
                message,
            });
        }
    }
    problems
}

fn value_enum<'de, D: Deserializer<'de>, T: ValueEnum>(d: D) -> Result<Option<T>, D::Error> {
    let text = match Value::deserialize(d)? {
        Value::String(text) => text,
        other => other.to_string(),
    };
    T::from_str(&text, true)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn value_enums<'de, D: Deserializer<'de>, T: ValueEnum>(d: D) -> Result<Option<Vec<T>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| T::from_str(text, true).map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests;
