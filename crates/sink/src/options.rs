//! Sink options, declared once and resolved in one place.
//!
//! Each kind declares its options in its config struct ([`SinkConfig`]): a flag (`clap`) is
//! also the `[[sinks]]` key of the same name with `_` for `-` (`--taxii-status-timeout`,
//! `taxii_status_timeout`); the keys a command line never gives (credentials) are the kind's
//! [`SinkConfig::FileKeys`] (`serde`).
//!
//! Precedence is ripgrep's way with its config file: a sink's `[[sinks]]` table becomes
//! arguments, the sink arguments the command line gave follow them, and clap parses the lot with
//! the kind's own flags, keeping the last occurrence of each ([`resolve`]). So the command line
//! wins, the file fills in the rest, and what neither gives keeps the default its flag declares;
//! and a value is checked by its flag's own parser, whichever side it comes from.

use std::ffi::OsString;
use std::fmt;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command, FromArgMatches};
use serde::de::{DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, de};
use serde_json::{Map, Value};

use crate::registry::{KINDS, SinkConfig};

/// The heading of the sink options in `--help`.
const HEADING: &str = "Sink options";

/// The sink options the command line gave (`--csv-columns`, `--taxii-status-timeout`, …): every
/// kind's flags, each declared once by its config, kept as the arguments they were given as so
/// that each sink can lay them over its own `[[sinks]]` table. A CLI flattens it into its
/// arguments (`#[command(flatten)]`).
#[derive(Clone, Debug, Default)]
pub struct SinkArgs {
    given: Vec<Given>,
}

/// One option of the command line, as arguments (`--csv-columns=value,type`).
#[derive(Clone, Debug)]
struct Given {
    id: String,
    arguments: Vec<OsString>,
}

/// Every sink option once, in the order of the registry.
fn every_option() -> Vec<Arg> {
    let mut options: Vec<Arg> = Vec::new();
    for kind in KINDS {
        for arg in (kind.flags)().get_arguments() {
            if !options.iter().any(|a| a.get_id() == arg.get_id()) {
                options.push(arg.clone());
            }
        }
    }
    options
}

impl clap::Args for SinkArgs {
    fn augment_args(command: Command) -> Command {
        // In the order of the registry (each kind's struct numbers its own flags from 0).
        every_option()
            .into_iter()
            .enumerate()
            .fold(command, |command, (order, arg)| {
                command.arg(arg.help_heading(HEADING).display_order(order))
            })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for SinkArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for arg in every_option() {
            let id = arg.get_id().as_str();
            if !matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let flag = flag(&arg);
            let arguments = match matches.get_raw(id) {
                Some(values) if arg.get_action().takes_values() => values
                    .map(|value| {
                        let mut argument = OsString::from(format!("{flag}="));
                        argument.push(value);
                        argument
                    })
                    .collect(),
                _ => vec![OsString::from(flag)],
            };
            given.push(Given {
                id: id.to_owned(),
                arguments,
            });
        }
        Ok(SinkArgs { given })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl SinkArgs {
    /// The arguments the command line gave for the flags of `command`.
    fn for_command(&self, command: &Command) -> impl Iterator<Item = OsString> + '_ {
        let ids: Vec<String> = command
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        self.given
            .iter()
            .filter(move |given| ids.contains(&given.id))
            .flat_map(|given| given.arguments.iter().cloned())
    }
}

/// One `[[sinks]]` table of a config file: the `--to` text and that sink's own keys, references
/// to the environment already resolved (so its `Debug` shows key names only: secrets are among
/// the values).
#[derive(Clone, Default, Deserialize)]
pub struct SinkTable {
    pub to: String,
    #[serde(flatten)]
    keys: Map<String, Value>,
}

impl fmt::Debug for SinkTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkTable")
            .field("to", &ctiport_net::redact_userinfo(&self.to))
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SinkTable {
    pub fn keys(&self) -> &Map<String, Value> {
        &self.keys
    }
}

/// The kind's flags, as a command of their own that takes each option several times (the last
/// wins).
pub(crate) fn command<C: SinkConfig>() -> Command {
    C::augment_args(
        Command::new(C::NAME)
            .no_binary_name(true)
            .args_override_self(true)
            .disable_help_flag(true),
    )
}

/// The options of a kind: the command line over its table over the defaults. The one place of
/// this precedence.
pub(crate) fn resolve<C: SinkConfig>(
    table: Option<&SinkTable>,
    command_line: &SinkArgs,
) -> Result<C, String> {
    let command = command::<C>();
    let mut arguments = Vec::new();
    if let Some(table) = table {
        for (key, value) in &table.keys {
            if let Some(arg) = command.get_arguments().find(|a| a.get_id() == key) {
                arguments.extend(arguments_of(arg, value)?);
            }
        }
    }
    arguments.extend(command_line.for_command(&command));
    parse::<C>(command, arguments)
}

/// Whether the value of the flag `key` of a kind's table is one it takes.
pub(crate) fn check_flag<C: SinkConfig>(key: &str, value: &Value) -> Result<(), String> {
    let command = command::<C>();
    let arg = command
        .get_arguments()
        .find(|a| a.get_id() == key)
        .ok_or("not an option of this sink")?;
    let arguments = arguments_of(arg, value)?;
    parse::<C>(command, arguments).map(drop)
}

fn parse<C: SinkConfig>(command: Command, arguments: Vec<OsString>) -> Result<C, String> {
    let matches = command
        .try_get_matches_from(arguments)
        .map_err(message_of)?;
    C::from_arg_matches(&matches).map_err(message_of)
}

/// `--taxii-status-timeout`.
fn flag(arg: &Arg) -> String {
    format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str()))
}

/// The arguments a `[[sinks]]` key stands for: `key = value` → `--key=value`; a switch
/// `key = true` → `--key` (`false` → nothing); a list → its items joined by commas, as the
/// option takes them on the command line.
fn arguments_of(arg: &Arg, value: &Value) -> Result<Vec<OsString>, String> {
    let flag = flag(arg);
    if !arg.get_action().takes_values() {
        return match value {
            Value::Bool(true) => Ok(vec![flag.into()]),
            Value::Bool(false) => Ok(Vec::new()),
            other => Err(format!("{other} is not of type \"boolean\"")),
        };
    }
    let text = match value {
        Value::Array(items) => items
            .iter()
            .map(scalar)
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => scalar(other)?,
    };
    Ok(vec![format!("{flag}={text}").into()])
}

fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(on) => Ok(on.to_string()),
        other => Err(format!("{other} is not a single value")),
    }
}

/// What a value's parser said, without clap's framing (the key is named by the caller).
fn message_of(error: clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(source) = std::error::Error::source(&error) {
        return source.to_string();
    }
    if let (Some(ContextValue::String(value)), Some(ContextValue::Strings(valid))) = (
        error.get(ContextKind::InvalidValue),
        error.get(ContextKind::ValidValue),
    ) {
        return format!("'{value}' is not one of: {}", valid.join(", "));
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_owned()
}

/// The kind's file keys of `table`, decoded.
pub(crate) fn file_keys<K: DeserializeOwned>(table: Option<&SinkTable>) -> Result<K, String> {
    let names = field_names::<K>();
    let keys: Map<String, Value> = table
        .map(|t| {
            t.keys
                .iter()
                .filter(|(key, _)| names.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    K::deserialize(Value::Object(keys)).map_err(|e| e.to_string())
}

/// Whether the file key `key` of a kind takes `value`.
pub(crate) fn check_file_key<K: DeserializeOwned>(key: &str, value: &Value) -> Result<(), String> {
    let mut one = Map::new();
    one.insert(key.to_owned(), value.clone());
    K::deserialize(Value::Object(one))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The field names serde knows a struct by (the `[[sinks]]` keys of a kind's file keys): its
/// derived `Deserialize` hands them to the deserializer, which is all this one takes from it.
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("field names taken"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// A parser of whole numbers within `min..=max`, saying which bound a value misses (as a
/// config file's schema would).
pub(crate) fn whole_number(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |text: &str| {
        let number: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a whole number"))?;
        if number < min {
            Err(format!("{number} is less than the minimum of {min}"))
        } else if number > max {
            Err(format!("{number} is greater than the maximum of {max}"))
        } else {
            Ok(number)
        }
    }
}

/// A parser of text that is not blank.
pub(crate) fn not_blank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};
    use serde_json::json;

    use super::*;
    use crate::csv::CsvConfig;
    use crate::stix::ChunkedBundleConfig;
    use crate::taxii::TaxiiConfig;

    /// A command line with the sink options, as a CLI flattens them.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sinks: SinkArgs,
    }

    fn command_line(arguments: &[&str]) -> SinkArgs {
        let argv = std::iter::once("ctiport").chain(arguments.iter().copied());
        Cli::try_parse_from(argv).unwrap().sinks
    }

    fn table(value: Value) -> SinkTable {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_command_line_wins_the_file_fills_in_the_defaults_stay() {
        let file =
            table(json!({"to": "stix:c/", "max_bundle_objects": 100, "max_bundle_bytes": 5000}));
        let options: ChunkedBundleConfig =
            resolve(Some(&file), &command_line(&["--max-bundle-objects", "7"])).unwrap();
        assert_eq!(
            (options.max_bundle_objects, options.max_bundle_bytes),
            (7, 5000)
        );
        let options: ChunkedBundleConfig = resolve(Some(&file), &command_line(&[])).unwrap();
        assert_eq!(
            (options.max_bundle_objects, options.max_bundle_bytes),
            (100, 5000)
        );
        let options: ChunkedBundleConfig = resolve(None, &command_line(&[])).unwrap();
        assert_eq!(
            (options.max_bundle_objects, options.max_bundle_bytes),
            (10_000, 50 * 1024 * 1024)
        );
    }

    #[test]
    fn switches_lists_and_shared_options_are_laid_over_the_same_way() {
        let file = table(
            json!({"to": "taxii:https://t/a/collections/c/", "taxii_allow_http": true,
                                "ca_file": "file.pem", "taxii_status_timeout": 60}),
        );
        let options: TaxiiConfig = resolve(Some(&file), &command_line(&[])).unwrap();
        assert!(options.taxii_allow_http);
        assert_eq!(
            options.ca.ca_file.as_deref(),
            Some(std::path::Path::new("file.pem"))
        );
        let given = command_line(&["--ca-file", "cli.pem", "--csv-columns", "value"]);
        let options: TaxiiConfig = resolve(Some(&file), &given).unwrap();
        assert_eq!(
            options.ca.ca_file.as_deref(),
            Some(std::path::Path::new("cli.pem"))
        );
        assert_eq!(options.taxii_status_timeout, 60);

        let file = table(
            json!({"to": "csv:i.csv", "csv_columns": ["stix_id", "tlp"], "csv_mode": "DELTA"}),
        );
        let options: CsvConfig = resolve(Some(&file), &given).unwrap();
        assert_eq!(
            format!("{options:?}"),
            "CsvConfig { csv_columns: Columns([Value]), csv_mode: Delta }"
        );
        let options: CsvConfig = resolve(Some(&file), &command_line(&[])).unwrap();
        assert_eq!(options.csv_columns.to_string(), "stix_id,tlp");
    }

    #[test]
    fn a_value_is_checked_by_its_option_whichever_side_it_comes_from() {
        let check = |key: &str, value: Value| check_flag::<ChunkedBundleConfig>(key, &value);
        assert_eq!(
            check("max_bundle_objects", json!(0)),
            Err("0 is less than the minimum of 1".into())
        );
        assert_eq!(check("max_bundle_objects", json!("12")), Ok(()));
        assert_eq!(
            check("max_bundle_bytes", json!(1.5)),
            Err("'1.5' is not a whole number".into())
        );
        let error = Cli::try_parse_from(["ctiport", "--max-bundle-objects", "0"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("0 is less than the minimum of 1"),
            "{error}"
        );
        let check = |key: &str, value: Value| check_flag::<TaxiiConfig>(key, &value);
        assert_eq!(
            check("taxii_allow_http", json!("yes")),
            Err("\"yes\" is not of type \"boolean\"".into())
        );
        assert_eq!(check("taxii_allow_http", json!(false)), Ok(()));
        let check = |key: &str, value: Value| check_flag::<CsvConfig>(key, &value);
        assert_eq!(
            check("csv_mode", json!("weekly")),
            Err("'weekly' is not one of: snapshot, delta".into())
        );
        assert!(
            check("csv_columns", json!(["value", "value"]))
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            check("csv_columns", json!({"a": 1}))
                .unwrap_err()
                .contains("not a single value")
        );
    }

    #[test]
    fn every_option_is_on_the_command_line_once() {
        let command = Cli::command();
        let ids: Vec<&str> = command
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .collect();
        for id in [
            "max_bundle_objects",
            "csv_columns",
            "misp_distribution",
            "misp_allow_http",
            "taxii_status_timeout",
            "ca_file",
        ] {
            assert_eq!(ids.iter().filter(|i| **i == id).count(), 1, "{id}");
        }
        // A switch given is `--switch`; only what was given is kept.
        let given = command_line(&["--misp-allow-http", "--csv-mode", "delta"]);
        let arguments: Vec<OsString> = given
            .given
            .iter()
            .flat_map(|g| g.arguments.clone())
            .collect();
        assert_eq!(arguments, ["--csv-mode=delta", "--misp-allow-http"]);
    }

    #[test]
    fn serde_tells_the_field_names() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Keys {
            user: Option<String>,
            #[serde(rename = "pass_word")]
            password: Option<String>,
        }
        assert_eq!(field_names::<Keys>(), ["user", "pass_word"]);
        assert!(field_names::<String>().is_empty());
    }
}
