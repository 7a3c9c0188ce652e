#![allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic

use std::collections::BTreeSet;

use clap::{CommandFactory as _, FromArgMatches as _};

use super::*;
use crate::args::{Cli, Command, ExportArgs};

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

/// The problems of a document, as `key: message` lines.
fn problems(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match parse(text, env) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(problems) => problems.iter().map(ToString::to_string).collect(),
    }
}

/// A document that uses every key of the schema.
const EVERY_KEY: &str = r#"
summary = "out/summary.json"
state = "state.db"

[source]
from = "graph"
[source.graph]
graph_url = "https://graph.microsoft.com/beta"
authority_url = "https://login.example"
rate = 2.5
concurrency = 2
page_size = 100
request_timeout = 30
max_pages = 10
max_attempts = 3
tenant_id = "contoso.example"
client_id = "${CLIENT_ID}"
client_secret = "${AZURE_SECRET}"

[enrich]
hosts = true
reputation = true
max = 50

[filters]
kind = "actor"
profiles = ["p1", "p2"]
sources = ["microsoft", "openSourceIntelligence"]
artifact_types = ["hostname", "url"]
seen_since = 2025-01-01
min_reputation = 40

[mapping]
actor_as = "both"
aliases = false
observables = true
tlp = "amber+strict"
marking_set = "tlp2"
producer_name = "Example CTI"
mappings_dir = "my-mappings"

[[sinks]]
to = "stix:out/chunks/"
max_bundle_objects = 100
max_bundle_bytes = 100000

[[sinks]]
to = "csv:out/i.csv"
csv_columns = ["value", "indicator_id"]
csv_mode = "delta"

[[sinks]]
to = "misp:https://misp.example.org/"
misp_distribution = 1
misp_org_name = "Example CTI"
misp_org_uuid = "a9f0b2f6-1d35-4a8f-9c8e-3b5e9a6a2f01"
misp_max_attributes = 500
misp_allow_http = true
misp_key = "${MISP_API_KEY}"
ca_file = "ca.pem"

[[sinks]]
to = "taxii:https://ti.example/api1/collections/c1/"
taxii_allow_http = false
taxii_status_timeout = 60
taxii_username = "admin"
taxii_password = "${TAXII_PW}"

[logging]
format = "json"
level = "debug"
progress = false
"#;

const EVERY_KEY_ENV: &[(&str, &str)] = &[
    ("CLIENT_ID", "app-id"),
    ("AZURE_SECRET", "azure-secret-value"),
    ("MISP_API_KEY", "mispkeymispkeymispkeymispkeymispkey12345"),
    ("TAXII_PW", "taxii-secret-value"),
];

/// Every key path of a JSON document (`sinks.to`, array items merged).
fn document_keys(value: &Value, prefix: &str, keys: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                keys.insert(path.clone());
                document_keys(item, &path, keys);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| document_keys(i, prefix, keys)),
        _ => {}
    }
}

/// Every key path the schema declares.
fn schema_keys(schema: &Value, prefix: &str, keys: &mut BTreeSet<String>) {
    if let Some(items) = schema.get("items") {
        schema_keys(items, prefix, keys);
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, item) in properties {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            keys.insert(path.clone());
            schema_keys(item, &path, keys);
        }
    }
}

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap()
}

#[test]
fn the_schema_is_valid_and_every_object_forbids_unknown_keys() {
    let schema = schema();
    assert!(jsonschema::meta::is_valid(&schema));
    fn walk(node: &Value, at: &str) {
        // But a sink's table, whose keys its sink checks (the_schema_leaves_a_sink_s_keys_to_the_sink).
        if node.get("properties").is_some() && at != "/properties/sinks/items" {
            assert_eq!(
                node.get("additionalProperties"),
                Some(&Value::Bool(false)),
                "{at}"
            );
        }
        match node {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, &format!("{at}/{k}"))),
            Value::Array(items) => items.iter().for_each(|v| walk(v, at)),
            _ => {}
        }
    }
    walk(&schema, "");
}

#[test]
fn every_key_of_the_schema_is_decoded() {
    let mut in_schema = BTreeSet::new();
    schema_keys(&schema(), "", &mut in_schema);
    let table: toml::Table = toml::from_str(EVERY_KEY).unwrap();
    let document = json_of(toml::Value::Table(table), &KeyPath::default()).unwrap();
    let mut in_document = BTreeSet::new();
    document_keys(&document, "", &mut in_document);
    // A sink's keys are its own (checked by the sink kinds' tests); the schema knows `to`.
    in_document.retain(|key| !key.starts_with("sinks.") || key == "sinks.to");
    assert_eq!(in_schema, in_document, "EVERY_KEY must use every key");

    let config = parse(EVERY_KEY, &env_of(EVERY_KEY_ENV)).unwrap();
    assert_eq!(
        config.state.as_deref(),
        Some(std::path::Path::new("state.db"))
    );
    assert_eq!(config.source.from.as_deref(), Some("graph"));
    assert_eq!(config.source.graph.rate, Some(2.5));
    assert_eq!(config.source.graph.client_id.as_deref(), Some("app-id"));
    assert_eq!(
        config
            .source
            .graph
            .client_secret
            .as_ref()
            .map(Secret::expose),
        Some("azure-secret-value")
    );
    assert_eq!(config.filters.seen_since.as_deref(), Some("2025-01-01"));
    assert_eq!(
        config.filters.sources,
        Some(vec![SourceArg::Microsoft, SourceArg::Osint])
    );
    assert_eq!(config.sinks.len(), 4);
    let key = |sink: usize, key: &str| config.sinks[sink].keys()[key].clone();
    assert_eq!(
        key(1, "csv_columns"),
        serde_json::json!(["value", "indicator_id"])
    );
    assert_eq!(key(2, "misp_distribution"), 1);
    // Secrets are resolved (and shown by no Debug).
    assert_eq!(key(3, "taxii_password"), "taxii-secret-value");
    assert!(!format!("{config:?}").contains("secret-value"));
    assert!(matches!(config.logging.level, Some(LogLevel::Debug)));
}

#[test]
fn the_schema_enums_are_the_options_values() {
    fn names<T: ValueEnum>() -> BTreeSet<String> {
        T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .flat_map(|v| {
                let mut names = vec![v.get_name().to_owned()];
                names.extend(v.get_name_and_aliases().skip(1).map(str::to_owned));
                names
            })
            .collect()
    }
    let schema = schema();
    let enum_at = |pointer: &str| -> BTreeSet<String> {
        schema
            .pointer(pointer)
            .and_then(|e| e.get("enum"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no enum at {pointer}"))
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect()
    };
    assert_eq!(
        enum_at("/properties/filters/properties/kind"),
        names::<KindArg>()
    );
    assert_eq!(
        enum_at("/properties/filters/properties/sources/items"),
        names::<SourceArg>()
    );
    assert_eq!(
        enum_at("/properties/mapping/properties/actor_as"),
        names::<ActorAsArg>()
    );
    assert_eq!(
        enum_at("/properties/mapping/properties/tlp"),
        names::<TlpArg>()
    );
    assert_eq!(
        enum_at("/properties/logging/properties/format"),
        names::<LogFormat>()
    );
    assert_eq!(
        enum_at("/properties/logging/properties/level"),
        names::<LogLevel>()
    );
}

#[test]
fn the_schema_leaves_a_sink_s_keys_to_the_sink() {
    let schema = schema();
    let sink = schema.pointer("/properties/sinks/items").unwrap();
    assert_eq!(sink["required"], serde_json::json!(["to"]));
    assert_eq!(sink["additionalProperties"], Value::Bool(true));
    let keys: Vec<&String> = sink["properties"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["to"]);
}

#[test]
fn secret_keys_are_the_keys_that_take_only_references() {
    let mut secret = BTreeSet::new();
    fn walk(node: &Value, secret: &mut BTreeSet<String>) {
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            for (key, item) in properties {
                if item.get("$ref").and_then(Value::as_str) == Some("#/$defs/secret") {
                    secret.insert(key.clone());
                }
                walk(item, secret);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, secret);
        }
    }
    walk(&schema(), &mut secret);
    assert_eq!(secret, BTreeSet::from(["client_secret".to_owned()]));
    // The sinks' secrets are declared by their kinds; the loader treats them the same.
    let sinks: BTreeSet<&str> = ctiport_sink::secret_keys().collect();
    assert_eq!(sinks, BTreeSet::from(["misp_key", "taxii_password"]));
}

#[test]
fn schema_errors_name_the_key() {
    let text = r#"
        [source]
        form = "dir:x"
        [[sinks]]
        to = "stix:out/b.json"
        [[sinks]]
        to = "csv:out/i.csv"
        csv_colums = ["value"]
        [[sinks]]
        to = "csv:out/j.csv"
        csv_columns = ["value", "colour"]
        [mapping]
        tlp = "purple"
        observables = "yes"
        [filters]
        min_reputation = 101
        [[sinks]]
        max_bundle_objects = 5
    "#;
    let found = problems(text, &no_env);
    let expect = [
        "filters.min_reputation: 101 is greater than the maximum of 100",
        "mapping.observables: \"yes\" is not of type \"boolean\"",
        "mapping.tlp: \"purple\" is not one of",
        "sinks[1].csv_colums: unknown key (expected one of: csv_columns, csv_mode, to)",
        "sinks[2].csv_columns: unknown CSV column 'colour'",
        "sinks[3].to: missing: this key is required",
        "source.form: unknown key (expected one of: from, graph)",
    ];
    assert_eq!(found.len(), expect.len(), "{found:#?}");
    for (found, expect) in found.iter().zip(expect) {
        assert!(
            found.starts_with(expect),
            "{found:?} should start with {expect:?}"
        );
    }
}

#[test]
fn errors_name_the_file_and_toml_syntax_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctiport.toml");
    std::fs::write(&path, "[mapping]\nproducer_nam = \"x\"\n").unwrap();
    let error = load(&path, &no_env).unwrap_err();
    assert!(
        error.starts_with(&format!(
            "{}: mapping.producer_nam: unknown key",
            path.display()
        )),
        "{error}"
    );
    std::fs::write(&path, "[mapping\n").unwrap();
    let error = load(&path, &no_env).unwrap_err();
    assert!(error.contains("not valid TOML"), "{error}");
    let error = load(&dir.path().join("absent.toml"), &no_env).unwrap_err();
    assert!(error.contains("cannot read the config file"), "{error}");
}

#[test]
fn references_are_read_from_the_environment() {
    let text = r#"
        summary = "${SUMMARY_PATH}"
        [mapping]
        tlp = "${TLP}"
        [filters]
        profiles = ["${PROFILE}", "literal"]
        [[sinks]]
        to = "${SINK}"
    "#;
    let env = env_of(&[
        ("SUMMARY_PATH", "out/s.json"),
        ("TLP", "green"),
        ("PROFILE", "p-1"),
        ("SINK", "csv:out/i.csv"),
    ]);
    let config = parse(text, &env).unwrap();
    assert_eq!(config.summary, Some(PathBuf::from("out/s.json")));
    assert!(matches!(config.mapping.tlp, Some(TlpArg::Green)));
    assert_eq!(
        config.filters.profiles,
        Some(vec!["p-1".into(), "literal".into()])
    );
    assert_eq!(config.sinks[0].to, "csv:out/i.csv");

    // A value read from the environment is checked like one written in the file.
    let env = env_of(&[
        ("SUMMARY_PATH", "s.json"),
        ("TLP", "purple"),
        ("PROFILE", "p"),
        ("SINK", "csv:i.csv"),
    ]);
    let found = problems(text, &env);
    assert!(
        found.len() == 1 && found[0].starts_with("mapping.tlp: \"purple\" is not one of"),
        "{found:?}"
    );
}

#[test]
fn a_missing_variable_names_the_key_and_the_variable() {
    let text = r#"
        [mapping]
        tlp = "${TLP_LEVEL}"
        [[sinks]]
        to = "taxii:https://ti.example/api1/collections/c1/"
        taxii_password = "${TAXII_PW}"
    "#;
    assert_eq!(
        problems(text, &no_env),
        ["mapping.tlp: the environment variable TLP_LEVEL is not set (or empty)"]
    );
    assert_eq!(
        problems(text, &env_of(&[("TLP_LEVEL", "red"), ("TAXII_PW", "")])),
        ["sinks[0].taxii_password: the environment variable TAXII_PW is not set (or empty)"]
    );
    let config = parse(text, &env_of(&[("TLP_LEVEL", "red"), ("TAXII_PW", "pw")])).unwrap();
    assert_eq!(
        config.sinks[0].keys().get("taxii_password"),
        Some(&Value::from("pw"))
    );
    // Only whole values are references.
    assert_eq!(
        problems("summary = \"out/${RUN}.json\"", &env_of(&[("RUN", "1")])),
        [
            "summary: a reference to an environment variable is the whole value, \"${NAME}\", NAME \
          being letters, digits and _"
        ]
    );
}

#[test]
fn a_secret_written_in_the_file_is_refused_without_being_shown() {
    for text in [
        "[[sinks]]\nto = \"misp:https://misp.example.org/\"\nmisp_key = \"hunter2hunter2\"",
        "[[sinks]]\nto = \"taxii:https://t.example/a/collections/c/\"\ntaxii_password = \"hunter2hunter2\"",
        "[source.graph]\nclient_secret = \"hunter2hunter2\"",
        "[source.graph]\nclient_secret = 123456789",
        "[[sinks]]\nto = \"taxii:https://t.example/a/collections/c/\"\ntaxii_password = 123456789",
        "[source.graph]\nclient_secret = \"pre${X}\"",
    ] {
        let found = problems(text, &env_of(&[("X", "y")]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("a secret is never written in the file"),
            "{found:?}"
        );
        assert!(
            !found[0].contains("hunter2") && !found[0].contains("123456789"),
            "{found:?}"
        );
    }
}

#[test]
fn sink_options_must_apply_to_their_sink() {
    let found = problems(
        r#"
        [[sinks]]
        to = "stix:out/bundle.json"
        max_bundle_objects = 10
        [[sinks]]
        to = "csv:out/i.csv"
        misp_distribution = "all"
        [[sinks]]
        to = "ndjson:out/o.ndjson"
        csv_mode = "delta"
        "#,
        &no_env,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("sinks[0].max_bundle_objects: applies to stix:<dir>/ sinks only"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("sinks[1].misp_distribution: applies to misp-feed: and misp: sinks"),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("sinks[2].csv_mode: applies to csv: sinks only"),
        "{found:?}"
    );
    // The sink's scheme is checked by the schema, its target when the sink is read.
    assert_eq!(
        problems("[[sinks]]\nto = \"kafka:https://u:pw@k.example/\"", &no_env),
        [
            "sinks[0].to: 'kafka:https://***@k.example/' is not a sink: expected stix:, ndjson:, \
          misp-feed:, csv:, taxii:, misp: or dump:, then its target"
        ]
    );
    let found = problems("[[sinks]]\nto = \"taxii:ftp://t.example/\"", &no_env);
    assert!(
        found.len() == 1 && found[0].starts_with("sinks[0].to: 'ftp://t.example/' is not a TAXII"),
        "{found:?}"
    );
}

#[test]
fn patterns_are_explained() {
    let found = problems(
        r#"
        summary = " "
        [source]
        from = "dri:x"
        [source.graph]
        graph_url = "graph.microsoft.com"
        [[sinks]]
        to = "misp-feed:f/"
        misp_org_uuid = "not-a-uuid"
        "#,
        &no_env,
    );
    assert_eq!(
        found,
        [
            "sinks[0].misp_org_uuid: 'not-a-uuid' is not a UUID",
            "source.from: 'dri:x' is not a source: expected \"graph\" or \"dir:<path>\"",
            "source.graph.graph_url: 'graph.microsoft.com' is not an absolute URL (https://…)",
            "summary: must not be empty",
        ]
    );
}

/// The options each sink of `args` is opened with.
fn sink_options(args: &ExportArgs, file: &FromFile) -> Vec<String> {
    let options = |(index, to): (usize, &String)| match crate::sinks::To::parse(to) {
        Ok(crate::sinks::To::Sink(spec)) => spec.describe(&args.sinks, file.sinks.get(index)),
        _ => panic!("not a sink: {to}"),
    };
    args.to
        .iter()
        .enumerate()
        .map(|s| options(s).unwrap())
        .collect()
}

/// Parses a command line and merges `text` into it, as `main` does.
fn merged(
    text: &str,
    command_line: &[&str],
) -> Result<(ExportArgs, FromFile, LogFormat, LogLevel), String> {
    let argv = ["ctiport"].iter().chain(command_line);
    let matches = Cli::command().try_get_matches_from(argv).unwrap();
    let cli = Cli::from_arg_matches(&matches).unwrap();
    let Command::Export(mut args) = cli.command else {
        panic!("not an export")
    };
    let (mut format, mut level) = (cli.log_format, cli.log_level);
    let config = parse(text, &no_env).map_err(|p| format!("{p:?}"))?;
    let file = merge::merge(
        config,
        Path::new("c.toml"),
        &matches,
        &mut args,
        &mut format,
        &mut level,
    )?;
    Ok((args, file, format, level))
}

const FILE: &str = r#"
summary = "out/s.json"
[source]
from = "dir:samples/mdti"
[filters]
profiles = ["a", "b"]
seen_since = "2024-01-01"
[mapping]
tlp = "green"
aliases = false
[[sinks]]
to = "stix:out/chunks/"
max_bundle_objects = 100
[[sinks]]
to = "csv:out/i.csv"
csv_columns = ["value"]
csv_mode = "delta"
[logging]
level = "warn"
format = "json"
progress = false
"#;

#[test]
fn the_file_fills_in_what_the_command_line_leaves_out() {
    let (args, file, format, level) = merged(FILE, &["export", "--config", "c.toml"]).unwrap();
    assert_eq!(args.from.as_deref(), Some("dir:samples/mdti"));
    assert_eq!(args.summary, Some(PathBuf::from("out/s.json")));
    assert_eq!(args.filters.profiles, ["a", "b"]);
    assert!(matches!(args.tlp, TlpArg::Green));
    assert!(args.no_aliases && args.no_progress);
    assert!(matches!((format, level), (LogFormat::Json, LogLevel::Warn)));
    assert_eq!(args.to, ["stix:out/chunks/", "csv:out/i.csv"]);
    // Each sink has its table's options; what neither gives keeps its default.
    assert_eq!(
        sink_options(&args, &file),
        [
            "ChunkedBundleConfig { max_bundle_objects: 100, max_bundle_bytes: 52428800 }",
            "CsvConfig { csv_columns: Columns([Value]), csv_mode: Delta }"
        ]
    );
    assert!(matches!(args.actor_as, ActorAsArg::ThreatActor));
}

#[test]
fn the_command_line_wins_over_the_file() {
    let (args, file, format, level) = merged(
        FILE,
        &[
            "--log-level",
            "debug",
            "export",
            "--config",
            "c.toml",
            "--tlp",
            "red",
            "--profile",
            "z",
            "--max-bundle-objects",
            "7",
            "--csv-columns",
            "type",
            "--csv-mode",
            "snapshot",
            "--log-format",
            "text",
        ],
    )
    .unwrap();
    assert!(matches!(args.tlp, TlpArg::Red));
    assert_eq!(args.filters.profiles, ["z"]);
    assert!(matches!(
        (format, level),
        (LogFormat::Text, LogLevel::Debug)
    ));
    // Per-sink options yield to the option given for every sink.
    assert_eq!(
        sink_options(&args, &file),
        [
            "ChunkedBundleConfig { max_bundle_objects: 7, max_bundle_bytes: 52428800 }",
            "CsvConfig { csv_columns: Columns([Type]), csv_mode: Snapshot }"
        ]
    );
    // What the command line does not give still comes from the file.
    assert_eq!(args.filters.seen_since.as_deref(), Some("2024-01-01"));

    // `--to` replaces the file's sinks, options and all.
    let (args, file, ..) = merged(
        FILE,
        &["export", "--config", "c.toml", "--to", "ndjson:o.ndjson"],
    )
    .unwrap();
    assert_eq!(args.to, ["ndjson:o.ndjson"]);
    assert!(file.sinks.is_empty());
}

#[test]
fn a_file_without_source_or_sinks_needs_the_command_line() {
    let error = merged(
        "[mapping]\ntlp = \"red\"",
        &["export", "--config", "c.toml"],
    )
    .unwrap_err();
    assert!(error.contains("no source"), "{error}");
    let error = merged(
        "[source]\nfrom = \"graph\"",
        &["export", "--config", "c.toml"],
    )
    .unwrap_err();
    assert!(error.contains("no sink"), "{error}");
    assert!(
        merged(
            "[source]\nfrom = \"graph\"",
            &["export", "--config", "c.toml", "--to", "stix:b.json"]
        )
        .is_ok()
    );
    // Without --config, --from and --to stay required.
    assert!(
        Cli::command()
            .try_get_matches_from(["ctiport", "export", "--to", "stix:b.json"])
            .is_err()
    );
}

#[test]
fn option_errors_are_restated_about_the_key() {
    let (_, file, ..) = merged(FILE, &["export", "--config", "c.toml"]).unwrap();
    assert_eq!(
        file.explain("--seen-since: 'x' is not a date".into()),
        "c.toml: filters.seen_since: 'x' is not a date"
    );
    assert_eq!(
        file.explain("--tlp: nope".into()),
        "c.toml: mapping.tlp: nope"
    );
    // An option the command line gave stays named as such.
    let (_, file, ..) =
        merged(FILE, &["export", "--config", "c.toml", "--seen-since", "x"]).unwrap();
    assert_eq!(
        file.explain("--seen-since: 'x' is not a date".into()),
        "--seen-since: 'x' is not a date"
    );
}

#[test]
fn the_sample_config_file_is_valid() {
    let text = include_str!("../../../../samples/ctiport.toml");
    let config = parse(text, &no_env).unwrap();
    assert!(!config.sinks.is_empty());
    assert!(config.source.from.is_some());
}
