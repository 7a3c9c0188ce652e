//! Every sink kind, one line each: the scheme `--to` names it by, and the config that parses its
//! options and builds it. A new sink is a folder with a config implementing [`SinkConfig`], and
//! one line in [`KINDS`].

use std::path::Path;

use clap::Command;
use ctiport_net::{Secret, redact_userinfo};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::csv::CsvConfig;
use crate::misp::{AttributeTable, MispFeedConfig, MispRestConfig};
use crate::ndjson::NdjsonConfig;
use crate::options::{self, SinkArgs, SinkTable};
use crate::stix::{BundleConfig, ChunkedBundleConfig};
use crate::taxii::TaxiiConfig;
use crate::{Sink, SinkError};

/// The kinds, in the order messages list them.
pub(crate) static KINDS: &[Kind] = &[
    Kind::of::<BundleConfig>("stix"),
    Kind::of::<ChunkedBundleConfig>("stix"),
    Kind::of::<NdjsonConfig>("ndjson"),
    Kind::of::<MispFeedConfig>("misp-feed"),
    Kind::of::<CsvConfig>("csv"),
    Kind::of::<TaxiiConfig>("taxii"),
    Kind::of::<MispRestConfig>("misp"),
];

/// The options of one sink kind, and how they build the sink (Vector's `SinkConfig::build`).
///
/// The struct's flags (`clap::Args`) are its options: each is also the `[[sinks]]` key of the
/// same name with `_` for `-`, and [`crate::options`] resolves them, command line over file over
/// the flag's default. Keys a command line never gives (credentials, which arrive as
/// [`ctiport_net::Secret`]s) are the kind's [`SinkConfig::FileKeys`].
pub trait SinkConfig: clap::Args + clap::FromArgMatches + std::fmt::Debug + Sized {
    /// How messages name the kind: `taxii:`, `stix:<dir>/`.
    const NAME: &'static str;

    /// The `[[sinks]]` keys that have no flag, decoded with serde (unknown fields are not
    /// expected: the keys are checked before).
    type FileKeys: DeserializeOwned;

    /// Those of the file keys that hold secrets: a config file may give them only as a reference
    /// to an environment variable (`"${NAME}"`).
    const SECRET_KEYS: &'static [&'static str] = &[];

    /// Whether `target` (the text after the scheme) is for this kind, where kinds share a scheme.
    fn accepts(target: &str) -> bool {
        let _ = target;
        true
    }

    /// Checks the form of the target before anything else (so that no later message echoes a
    /// password written into a URL).
    fn check_target(target: &str) -> Result<(), String> {
        let _ = target;
        Ok(())
    }

    /// Validates the options, the file keys and the target together, and makes the sink. A usage
    /// error here stops the run before anything is read; nothing is sent before `begin`.
    fn build(self, target: &str, file: Self::FileKeys, context: &SinkContext) -> Built;
}

/// What [`SinkConfig::build`] gives: the sink, or why it cannot be made.
pub type Built = Result<Box<dyn Sink>, SinkError>;

/// The file keys of a kind that has none.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFileKeys {}

/// What a sink may know of the run beyond its own options.
pub struct SinkContext {
    /// The TLP level of the run (`clear`, `green`, `amber`, `amber+strict`, `red`).
    pub(crate) tlp: String,
    /// `--producer-name`: the MISP events' creator organisation unless a sink names another.
    pub(crate) producer_name: String,
    /// The MISP attribute table of the run (`--mappings`).
    pub(crate) table: AttributeTable,
    /// Environment variables, where credentials come from when no config file gives them.
    env: Box<Lookup>,
}

/// Reads an environment variable.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Makes a kind's sink from its target, its table (if a config file gives one), the command
/// line's sink options and the run.
type Open = fn(&str, Option<&SinkTable>, &SinkArgs, &SinkContext) -> Built;

impl SinkContext {
    /// The context of a run; the MISP attribute table comes from `mappings` (else the built-in
    /// one), environment variables from the process.
    pub fn new(tlp: &str, producer_name: &str, mappings: Option<&Path>) -> Result<Self, String> {
        let table =
            AttributeTable::load(mappings).map_err(|e| format!("mapping table error: {e}"))?;
        Ok(SinkContext {
            tlp: tlp.to_owned(),
            producer_name: producer_name.to_owned(),
            table,
            env: Box::new(|name| std::env::var(name).ok()),
        })
    }

    /// Environment variables from `env` instead of the process.
    pub fn with_env(self, env: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        SinkContext {
            env: Box::new(env),
            ..self
        }
    }

    /// A credential of a sink: the config file's (`given`, from a reference to the
    /// environment), else the environment variable `name` that the sink documents; never an
    /// argument.
    pub fn credential(&self, given: Option<Secret>, name: &str) -> Option<Secret> {
        given.or_else(|| (self.env)(name).map(Secret::new))
    }
}

/// A sink kind, as the registry holds it: its config's functions, without its type.
pub(crate) struct Kind {
    scheme: &'static str,
    name: &'static str,
    secret_keys: &'static [&'static str],
    accepts: fn(&str) -> bool,
    check_target: fn(&str) -> Result<(), String>,
    /// Its flags, as a command of their own.
    pub(crate) flags: fn() -> Command,
    file_keys: fn() -> &'static [&'static str],
    check_flag: fn(&str, &Value) -> Result<(), String>,
    check_file_key: fn(&str, &Value) -> Result<(), String>,
    open: Open,
    describe: fn(Option<&SinkTable>, &SinkArgs) -> Result<String, String>,
}

impl Kind {
    const fn of<C: SinkConfig>(scheme: &'static str) -> Kind {
        Kind {
            scheme,
            name: C::NAME,
            secret_keys: C::SECRET_KEYS,
            accepts: C::accepts,
            check_target: C::check_target,
            flags: options::command::<C>,
            file_keys: options::field_names::<C::FileKeys>,
            check_flag: options::check_flag::<C>,
            check_file_key: options::check_file_key::<C::FileKeys>,
            open: open::<C>,
            describe: describe::<C>,
        }
    }

    /// Every `[[sinks]]` key of the kind, `to` included.
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = (self.flags)()
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .chain((self.file_keys)().iter().map(|k| (*k).to_owned()))
            .collect();
        keys.push("to".into());
        keys.sort();
        keys
    }

    fn takes(&self, key: &str) -> bool {
        self.keys().iter().any(|k| k == key)
    }
}

fn open<C: SinkConfig>(
    target: &str,
    table: Option<&SinkTable>,
    command_line: &SinkArgs,
    context: &SinkContext,
) -> Built {
    let config: C = options::resolve(table, command_line).map_err(SinkError::Other)?;
    let file = options::file_keys::<C::FileKeys>(table).map_err(SinkError::Other)?;
    config.build(target, file, context)
}

fn describe<C: SinkConfig>(
    table: Option<&SinkTable>,
    command_line: &SinkArgs,
) -> Result<String, String> {
    options::resolve::<C>(table, command_line).map(|config| format!("{config:?}"))
}

/// The schemes of the sinks, in the order messages list them (`stix`, `ndjson`, …).
pub fn schemes() -> Vec<&'static str> {
    let mut schemes: Vec<&'static str> = Vec::new();
    for kind in KINDS {
        if !schemes.contains(&kind.scheme) {
            schemes.push(kind.scheme);
        }
    }
    schemes
}

/// The `[[sinks]]` keys that hold secrets, of every kind.
pub fn secret_keys() -> impl Iterator<Item = &'static str> {
    KINDS
        .iter()
        .flat_map(|kind| kind.secret_keys.iter().copied())
}

/// Why `key` is not a key of the sink `to`, which takes `keys`: another kind's option, or a key
/// no sink takes.
pub fn foreign_key(key: &str, to: &str, keys: &[String]) -> String {
    let owners: Vec<&str> = KINDS
        .iter()
        .filter(|kind| kind.takes(key))
        .map(|kind| kind.name)
        .collect();
    if owners.is_empty() {
        format!("unknown key (expected one of: {})", keys.join(", "))
    } else {
        format!(
            "applies to {} sinks only, not to '{}'",
            owners.join(" and "),
            redact_userinfo(to)
        )
    }
}

/// A `--to <scheme>:<target>`, parsed: the kind of sink and its target.
#[derive(Clone)]
pub struct SinkSpec {
    kind: &'static Kind,
    text: String,
    target: String,
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SinkSpec({})", redact_userinfo(&self.text))
    }
}

impl SinkSpec {
    pub fn parse(text: &str) -> Result<SinkSpec, String> {
        let expected = || {
            let names: Vec<String> = schemes().iter().map(|s| format!("{s}:")).collect();
            names.join(", ")
        };
        let Some((scheme, target)) = text.split_once(':') else {
            return Err(format!(
                "sink '{}' has no scheme (expected {})",
                redact_userinfo(text),
                expected()
            ));
        };
        if target.is_empty() {
            return Err(format!("sink '{text}' has no target"));
        }
        let kind = KINDS
            .iter()
            .find(|kind| kind.scheme == scheme && (kind.accepts)(target))
            .ok_or_else(|| {
                format!(
                    "unknown sink scheme '{scheme}:' in '{}' (expected {})",
                    redact_userinfo(text),
                    expected()
                )
            })?;
        (kind.check_target)(target)?;
        Ok(SinkSpec {
            kind,
            text: text.to_owned(),
            target: target.to_owned(),
        })
    }

    /// The problems of a `[[sinks]]` table for this sink, as `(key, message)`: keys it does not
    /// take, and values its options refuse. Secrets are left to the caller, which reads them as
    /// references to the environment.
    pub fn check_table(&self, keys: &Map<String, Value>) -> Vec<(String, String)> {
        let kind = self.kind;
        let file_keys = (kind.file_keys)();
        let mut problems = Vec::new();
        for (key, value) in keys {
            let checked = if key == "to" {
                Ok(())
            } else if (kind.flags)().get_arguments().any(|a| a.get_id() == key) {
                (kind.check_flag)(key, value)
            } else if kind.secret_keys.contains(&key.as_str()) {
                // A reference to the environment, which the config file's reader checks: no
                // message may show a secret's value.
                Ok(())
            } else if file_keys.contains(&key.as_str()) {
                (kind.check_file_key)(key, value)
            } else {
                Err(foreign_key(key, &self.text, &kind.keys()))
            };
            if let Err(message) = checked {
                problems.push((key.clone(), message));
            }
        }
        problems
    }

    /// The options this sink would be opened with, for logs and tests (no secret is among them:
    /// credentials are file keys).
    pub fn describe(
        &self,
        command_line: &SinkArgs,
        table: Option<&SinkTable>,
    ) -> Result<String, String> {
        (self.kind.describe)(table, command_line)
    }

    /// Makes the sink: its options from the command line over its `[[sinks]]` table (when it
    /// comes from a config file) over their defaults.
    pub fn open(
        &self,
        command_line: &SinkArgs,
        table: Option<&SinkTable>,
        context: &SinkContext,
    ) -> Built {
        (self.kind.open)(&self.target, table, command_line, context)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(to: &str, keys: Value) -> Vec<(String, String)> {
        let Value::Object(mut keys) = keys else {
            panic!("not a table")
        };
        keys.insert("to".into(), to.into());
        SinkSpec::parse(to).unwrap().check_table(&keys)
    }

    #[test]
    fn a_secret_key_is_a_file_key_of_its_kind() {
        for kind in KINDS {
            for key in kind.secret_keys {
                assert!((kind.file_keys)().contains(key), "{}: {key}", kind.name);
            }
        }
        assert_eq!(
            secret_keys().collect::<Vec<_>>(),
            ["taxii_password", "misp_key"]
        );
    }

    #[test]
    fn specs_find_their_kind() {
        let name = |text: &str| SinkSpec::parse(text).map(|spec| spec.kind.name);
        assert_eq!(name("stix:out/b.json"), Ok("stix:<file>"));
        assert_eq!(name("stix:out/chunks/"), Ok("stix:<dir>/"));
        assert_eq!(name("misp-feed:feed"), Ok("misp-feed:"));
        assert!(name("stix:").unwrap_err().contains("has no target"));
        assert!(name("kafka:x").unwrap_err().contains("unknown sink scheme"));
        assert_eq!(
            schemes(),
            ["stix", "ndjson", "misp-feed", "csv", "taxii", "misp"]
        );
        // The target's form is checked at once, and a password in it is never shown.
        let error = name("taxii:https://u:hunter2@t.example/a/collections/c/").unwrap_err();
        assert!(
            error.contains("TAXII_USERNAME") && !error.contains("hunter2"),
            "{error}"
        );
        let error = name("misp:ftp://m.example/").unwrap_err();
        assert!(error.contains("is not a MISP base URL"), "{error}");
    }

    #[test]
    fn a_table_takes_its_kind_s_keys_only() {
        assert!(
            problems(
                "csv:i.csv",
                json!({"csv_mode": "delta", "csv_columns": ["value"]})
            )
            .is_empty()
        );
        assert_eq!(
            problems(
                "csv:i.csv",
                json!({"csv_colums": ["value"], "max_bundle_objects": 5, "misp_key": "x"})
            ),
            [
                (
                    "csv_colums".into(),
                    "unknown key (expected one of: csv_columns, csv_mode, to)".into()
                ),
                (
                    "max_bundle_objects".into(),
                    "applies to stix:<dir>/ sinks only, not to 'csv:i.csv'".into()
                ),
                (
                    "misp_key".into(),
                    "applies to misp: sinks only, not to 'csv:i.csv'".into()
                ),
            ]
        );
        let shared = problems(
            "stix:b.json",
            json!({"misp_org_name": "x", "ca_file": "ca.pem"}),
        );
        assert_eq!(
            shared[0].1,
            "applies to taxii: and misp: sinks only, not to 'stix:b.json'"
        );
        assert_eq!(
            shared[1].1,
            "applies to misp-feed: and misp: sinks only, not to 'stix:b.json'"
        );
        assert_eq!(
            problems("misp-feed:f/", json!({"misp_max_attributes": 0})),
            [(
                "misp_max_attributes".into(),
                "0 is less than the minimum of 1".into()
            )]
        );
        // A file key is decoded by its kind, a secret's value never shown.
        let found = problems(
            "taxii:https://t.example/a/collections/c/",
            json!({"taxii_username": 7, "taxii_password": 123456789}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].1.contains("expected a string"), "{found:?}");
    }

    #[test]
    fn sinks_are_opened_with_their_credentials() {
        let context = SinkContext::new("amber", "Producer", None)
            .unwrap()
            .with_env(|name| (name == "MISP_KEY").then(|| "k".repeat(40)));
        // The error of opening `to` with `keys` as its table.
        let open = |to: &str, keys: Value| {
            let mut table = json!({"to": to});
            table
                .as_object_mut()
                .unwrap()
                .extend(keys.as_object().unwrap().clone());
            let table: SinkTable = serde_json::from_value(table).unwrap();
            let spec = SinkSpec::parse(to).unwrap();
            crate::fixtures::error(spec.open(&SinkArgs::default(), Some(&table), &context))
        };
        assert_eq!(open("misp:https://misp.example.org/", json!({})), "");
        // A key from the file takes the place of the variable, and is checked the same way.
        let error = open(
            "misp:https://misp.example.org/",
            json!({"misp_key": "short"}),
        );
        assert!(
            error.contains("40 letters and digits") && !error.contains("short"),
            "{error}"
        );
        let error = open(
            "taxii:https://t.example/a/collections/c/",
            json!({"taxii_username": "u"}),
        );
        assert!(error.contains("TAXII_PASSWORD is not"), "{error}");
    }
}
