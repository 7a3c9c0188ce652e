//! Wiring of the `--to` sinks: each is parsed by `ctiport-sink`, checked against its `[[sinks]]`
//! table when a config file gives one, and opened with the sink options of the command line.
//! The sinks own their options; nothing here knows one.

use std::collections::HashSet;
use std::path::PathBuf;

use ctiport_net::redact_userinfo;
use ctiport_sink::{SinkContext, SinkSpec, SinkTable, foreign_key, schemes};
use serde_json::{Map, Value};

use crate::args::ExportArgs;
use crate::pipeline::NamedSink;

/// What a `--to` names: the capture of a live run (`dump:<dir>`), or a sink.
pub enum To {
    Dump(PathBuf),
    Sink(SinkSpec),
}

impl To {
    pub fn parse(text: &str) -> Result<To, String> {
        match text.split_once(':') {
            Some(("dump", dir)) => Ok(To::Dump(PathBuf::from(dir))),
            Some((scheme, target)) if !target.is_empty() && schemes().contains(&scheme) => {
                SinkSpec::parse(text).map(To::Sink)
            }
            _ => Err(format!(
                "'{}' is not a sink: expected {} or dump:, then its target",
                redact_userinfo(text),
                schemes()
                    .iter()
                    .map(|s| format!("{s}:"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The problems of one `[[sinks]]` table of a config file, as `(key, message)`: its `to`, the
/// keys its sink does not take, and values its options refuse. A table without a `to` text has
/// only the schema's problem.
pub fn check_table(table: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(to) = table.get("to").and_then(Value::as_str) else {
        return Vec::new();
    };
    match To::parse(to) {
        Err(message) => vec![("to".into(), message)],
        Ok(To::Dump(_)) => table
            .keys()
            .filter(|key| *key != "to")
            .map(|key| (key.clone(), foreign_key(key, to, &["to".into()])))
            .collect(),
        Ok(To::Sink(spec)) => spec.check_table(table),
    }
}

/// Opens every `--to` sink but the `dump:` capture, each with its `[[sinks]]` table when they
/// come from a config file (`tables`, one per `--to`); any failure here is a configuration error.
pub fn open_sinks(args: &ExportArgs, tables: &[SinkTable]) -> Result<Vec<NamedSink>, String> {
    let context = SinkContext::new(
        args.tlp.level(),
        &args.producer_name,
        args.mappings.as_deref(),
    )?;
    let mut seen = HashSet::new();
    let mut sinks = Vec::new();
    for (index, text) in args.to.iter().enumerate() {
        let To::Sink(spec) = To::parse(text)? else {
            continue;
        };
        if !seen.insert(text.clone()) {
            return Err(format!("sink '{}' is given twice", redact_userinfo(text)));
        }
        let table = tables.get(index);
        if let Ok(options) = spec.describe(&args.sinks, table) {
            tracing::debug!(sink = %redact_userinfo(text), "options {options}");
        }
        let sink = spec
            .open(&args.sinks, table, &context)
            .map_err(|e| format!("cannot open sink '{text}': {e}"))?;
        sinks.push((text.clone(), sink));
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_specs() {
        for good in [
            "stix:out/bundle.json",
            "stix:out/chunks/",
            "ndjson:o.ndjson",
            "misp-feed:out/feed",
            "csv:out/i.csv",
            "taxii:https://ti.example/api1/collections/c1/",
            "misp:https://misp.example.org",
        ] {
            assert!(matches!(To::parse(good), Ok(To::Sink(_))), "{good}");
        }
        assert!(matches!(To::parse("dump:capture/"), Ok(To::Dump(_))));
        for bad in ["kafka:x", "stix:", "out.json"] {
            let error = To::parse(bad).err().unwrap_or_default();
            assert!(error.contains("is not a sink"), "{bad}: {error}");
        }
        let error = To::parse("misp:https://u:hunter2@misp.example.org/")
            .err()
            .unwrap_or_default();
        assert!(!error.is_empty() && !error.contains("hunter2"), "{error}");
        let error = To::parse("kafka:https://u:hunter2@k.example/")
            .err()
            .unwrap_or_default();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
