//! The config file under the command line: an option given on the command line (or through its
//! environment variable, such as `CTIPORT_LOG_LEVEL`) wins; the file fills in the others; what
//! neither gives keeps its default.

use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;
use ctiport_net::Secret;

use ctiport_sink::SinkTable;

use super::Config;
use crate::args::{EnrichArg, ExportArgs, LogFormat, LogLevel};

/// What the config file gives that the command line has no option for, and where the values
/// taken from it came from. Empty without `--config`.
#[derive(Clone, Debug, Default)]
pub struct FromFile {
    pub path: Option<PathBuf>,
    /// The `[[sinks]]` tables, one per `ExportArgs::to`; empty when `--to` was given on the
    /// command line (which then replaces them), so that those sinks have no options of their own.
    pub sinks: Vec<SinkTable>,
    /// `[source.graph]` credentials, in place of the `AZURE_*` variables.
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Option name → key, for each run-wide option taken from the file.
    keys: Vec<(&'static str, &'static str)>,
}

impl FromFile {
    /// A configuration error about an option (`--seen-since: …`) restated about the key its
    /// value came from (`ctiport.toml: filters.seen_since: …`).
    pub fn explain(&self, message: String) -> String {
        let Some(path) = &self.path else {
            return message;
        };
        for (option, key) in &self.keys {
            match message.strip_prefix(option) {
                Some(rest) if rest.starts_with([':', ' ']) => {
                    return format!("{}: {key}{rest}", path.display());
                }
                _ => {}
            }
        }
        message
    }
}

/// `--config <file>`: reads the file (environment variables from the process) and merges it
/// into the arguments. `matches` are the whole command line's.
pub fn apply(
    matches: &ArgMatches,
    args: &mut ExportArgs,
    log_format: &mut LogFormat,
    log_level: &mut LogLevel,
) -> Result<FromFile, String> {
    let Some(path) = args.config.clone() else {
        return Ok(FromFile::default());
    };
    let config = super::load(&path, &|name| std::env::var(name).ok())?;
    merge(config, &path, matches, args, log_format, log_level)
}

/// Whether the option `id` was given on the command line or through its environment variable.
fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// [`apply`] on a decoded file.
pub fn merge(
    config: Config,
    path: &Path,
    matches: &ArgMatches,
    args: &mut ExportArgs,
    log_format: &mut LogFormat,
    log_level: &mut LogLevel,
) -> Result<FromFile, String> {
    let export = matches.subcommand_matches("export").unwrap_or(matches);
    let mut keys = Vec::new();
    // `fill!(file value, option id, option name, key => target)`: the file's value, unless the
    // command line gave the option.
    macro_rules! fill {
        ($matches:expr, $value:expr, $id:literal, $option:literal, $key:literal => $target:expr) => {
            if let Some(value) = $value {
                if !explicit($matches, $id) {
                    $target = value;
                    keys.push(($option, $key));
                }
            }
        };
    }
    let Config {
        source,
        enrich,
        filters,
        mapping,
        mut sinks,
        summary,
        state,
        logging,
    } = config;

    fill!(export, source.from.map(Some), "from", "--from", "source.from" => args.from);
    let graph = source.graph;
    fill!(export, graph.graph_url, "graph_url", "--graph-url", "source.graph.graph_url" => args.graph.graph_url);
    fill!(export, graph.authority_url, "authority_url", "--authority-url", "source.graph.authority_url" => args.graph.authority_url);
    fill!(export, graph.rate, "rate", "--rate", "source.graph.rate" => args.graph.rate);
    fill!(export, graph.concurrency, "concurrency", "--concurrency", "source.graph.concurrency" => args.graph.concurrency);
    fill!(export, graph.page_size.map(Some), "page_size", "--page-size", "source.graph.page_size" => args.graph.page_size);
    fill!(export, graph.request_timeout, "request_timeout", "--request-timeout", "source.graph.request_timeout" => args.graph.request_timeout);
    fill!(export, graph.max_pages, "max_pages", "--max-pages", "source.graph.max_pages" => args.graph.max_pages);
    fill!(export, graph.max_attempts, "max_attempts", "--max-attempts", "source.graph.max_attempts" => args.graph.max_attempts);

    let what = (enrich.hosts.is_some() || enrich.reputation.is_some()).then(|| {
        let mut what = Vec::new();
        if enrich.hosts == Some(true) {
            what.push(EnrichArg::Hosts);
        }
        if enrich.reputation == Some(true) {
            what.push(EnrichArg::Reputation);
        }
        what
    });
    fill!(export, what, "enrich", "--enrich", "enrich" => args.enrich);
    fill!(export, enrich.max, "enrich_max", "--enrich-max", "enrich.max" => args.enrich_max);

    let f = &mut args.filters;
    fill!(export, filters.kind.map(Some), "kind", "--kind", "filters.kind" => f.kind);
    fill!(export, filters.profiles, "profiles", "--profile", "filters.profiles" => f.profiles);
    fill!(export, filters.sources, "sources", "--source", "filters.sources" => f.sources);
    fill!(export, filters.artifact_types, "artifact_types", "--artifact-type", "filters.artifact_types" => f.artifact_types);
    fill!(export, filters.seen_since.map(Some), "seen_since", "--seen-since", "filters.seen_since" => f.seen_since);
    fill!(export, filters.min_reputation.map(Some), "min_reputation", "--min-reputation", "filters.min_reputation" => f.min_reputation);

    fill!(export, mapping.actor_as, "actor_as", "--actor-as", "mapping.actor_as" => args.actor_as);
    fill!(export, mapping.aliases.map(|a| !a), "no_aliases", "--no-aliases", "mapping.aliases" => args.no_aliases);
    fill!(export, mapping.observables, "observables", "--observables", "mapping.observables" => args.observables);
    fill!(export, mapping.tlp, "tlp", "--tlp", "mapping.tlp" => args.tlp);
    fill!(export, mapping.marking_set, "marking_set", "--marking-set", "mapping.marking_set" => args.marking_set);
    fill!(export, mapping.producer_name, "producer_name", "--producer-name", "mapping.producer_name" => args.producer_name);
    fill!(export, mapping.mappings_dir.map(Some), "mappings", "--mappings", "mapping.mappings_dir" => args.mappings);

    fill!(export, summary.map(Some), "summary", "--summary", "summary" => args.summary);
    fill!(export, state.map(Some), "state", "--state", "state" => args.state);
    fill!(matches, logging.format, "log_format", "--log-format", "logging.format" => *log_format);
    fill!(matches, logging.level, "log_level", "--log-level", "logging.level" => *log_level);
    fill!(export, logging.progress.map(|p| !p), "no_progress", "--no-progress", "logging.progress" => args.no_progress);

    // `--to` on the command line replaces the file's sinks, options and all. Otherwise each
    // sink keeps its table, under the sink options of the command line (the sink lays one over
    // the other when it is opened).
    if explicit(export, "to") {
        sinks.clear();
    } else if !sinks.is_empty() {
        args.to = sinks.iter().map(|sink| sink.to.clone()).collect();
    }

    let shown = path.display();
    if args.from.is_none() {
        return Err(format!(
            "{shown}: no source: set `from` under [source], or pass --from"
        ));
    }
    if args.to.is_empty() {
        return Err(format!(
            "{shown}: no sink: add a [[sinks]] table with `to = \"…\"`, or pass --to"
        ));
    }
    Ok(FromFile {
        path: Some(path.to_owned()),
        sinks,
        tenant_id: graph.tenant_id,
        client_id: graph.client_id,
        client_secret: graph.client_secret,
        keys,
    })
}
