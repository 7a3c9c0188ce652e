//! `ctiport`: parse, wire, report. The work lives in the library crates.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

mod args;
mod config;
mod filters;
mod pipeline;
mod progress;
mod sinks;
mod summary;
mod text_log;
mod validate;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, FromArgMatches as _};
use std::sync::Arc;

use ctiport_fetch::{Credentials, DumpSource, EnrichGate, EnrichOptions, GraphConfig, Source};
use ctiport_net::Secret;
use ctiport_transform::{ActorAs, Mapper, MappingOptions, Mappings};
use tracing_subscriber::EnvFilter;

use args::{ActorAsArg, Cli, Command, ExportArgs, LogFormat, LogLevel};
use config::FromFile;

/// Exit codes (documented in the README and in `--help`).
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let usage = |error: clap::Error| {
        let _ = error.print();
        ExitCode::from(if error.use_stderr() { EXIT_USAGE } else { 0 })
    };
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return usage(error),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return usage(error),
    };
    // `--config`: the file fills in what the command line leaves out, logging included.
    let applied = match &mut cli.command {
        Command::Export(args) => {
            config::apply(&matches, args, &mut cli.log_format, &mut cli.log_level)
        }
        Command::Validate { .. } => Ok(FromFile::default()),
    };
    let file = match applied {
        Ok(file) => file,
        Err(message) => {
            eprintln!("ctiport: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(cli.log_format, cli.log_level);
    match cli.command {
        Command::Validate { path } => validate::run(&path),
        Command::Export(args) => export(args, file),
    }
}

fn init_logging(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour only for a human at a terminal: log files and schedulers get plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.fmt_fields(text_log::fields()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn export(args: ExportArgs, file: FromFile) -> ExitCode {
    if let Some(path) = &file.path {
        tracing::debug!("options from {}", path.display());
    }
    let export = match configure(&args, &file).map_err(|message| file.explain(message)) {
        Ok(export) => export,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("ctiport: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ctiport: cannot start the runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime
        .block_on(export.run())
        .and_then(|summary| report(&args, summary))
    {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            tracing::error!("export failed: {error:#}");
            // A scheduler must never read an earlier run's success: the summary says this failed.
            if let Some(path) = &args.summary {
                let failed = summary::Summary {
                    exit_code: i32::from(EXIT_FAILED),
                    source_error: Some(format!("{error:#}")),
                    ..Default::default()
                };
                if let Err(write_error) = serde_json::to_vec_pretty(&failed)
                    .map_err(anyhow::Error::from)
                    .and_then(|json| write_atomically(path, &json))
                {
                    tracing::error!(
                        "writing the summary to {} failed: {write_error:#}",
                        path.display()
                    );
                }
            }
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Turns the arguments into a runnable export, or a usage/configuration error message.
fn configure(args: &ExportArgs, file: &FromFile) -> Result<pipeline::Export, String> {
    let from = args.from.as_deref().ok_or("--from is required")?;
    let enrich = EnrichOptions {
        hosts: args.enrich.contains(&args::EnrichArg::Hosts),
        reputation: args.enrich.contains(&args::EnrichArg::Reputation),
        max_hosts: args.enrich_max,
    };
    // `dump:` captures what the live source fetched; every other `--to` is a sink of the mapping.
    let dumps: Vec<PathBuf> = args
        .to
        .iter()
        .filter_map(|text| match sinks::To::parse(text) {
            Ok(sinks::To::Dump(dir)) => Some(dir),
            _ => None,
        })
        .collect();
    let dump_capture = match dumps.as_slice() {
        [] => None,
        [dir] if from == "graph" => match dir.as_os_str().is_empty() {
            true => return Err("dump: needs a directory, e.g. --to dump:capture/".into()),
            false => Some(dir.clone()),
        },
        [_] => return Err("--to dump: captures a live run; it needs --from graph".into()),
        _ => return Err("--to dump: may be given once".into()),
    };
    let mappings = Mappings::load(args.mappings.as_deref())
        .map_err(|e| format!("mapping table error: {e}"))?;
    let filter = filters::filter(&args.filters, &enrich, &mappings)?;
    let selection = filters::selection(&args.filters);
    // Hosts of indicators the filters leave out are not looked up.
    let enrich_gate = filter
        .filters_indicators()
        .then(|| EnrichGate::new(filter.enrichment_gate()));
    let source = match from.split_once(':') {
        Some(("dir", path)) if !path.is_empty() => {
            let mut dump = DumpSource::open(Path::new(path))
                .map_err(|e| e.to_string())?
                .with_selection(selection)
                .with_enrichment(enrich);
            if let Some(gate) = enrich_gate {
                dump = dump.with_enrichment_gate(gate);
            }
            Source::Dump(dump)
        }
        None if from == "graph" => {
            let mut config = graph_config(&args.graph, file)?;
            config.enrich = Some(enrich);
            config.selection = selection;
            config.enrich_gate = enrich_gate;
            Source::Graph {
                config: Arc::new(config),
                capture: dump_capture.clone(),
            }
        }
        _ => {
            return Err(format!(
                "unknown source '{from}' (expected graph or dir:<path>)"
            ));
        }
    };

    let options = MappingOptions {
        actor_as: match args.actor_as {
            ActorAsArg::ThreatActor => ActorAs::ThreatActor,
            ActorAsArg::IntrusionSet => ActorAs::IntrusionSet,
            ActorAsArg::Both => ActorAs::Both,
        },
        include_aliases: !args.no_aliases,
        observables: args.observables,
        tlp: args.tlp.level().to_owned(),
        marking_set: args.marking_set.clone(),
        producer_name: args.producer_name.clone(),
    };
    let mapper = Mapper::new(options, mappings)?;
    let sinks = sinks::open_sinks(args, &file.sinks)?;
    let state = args.state.clone().map(|path| pipeline::StateOptions {
        path,
        coverage: ctiport_state::Coverage {
            indicators_filtered: filter.filters_indicators()
                || args.filters.min_reputation.is_some(),
            profiles_selected: args.filters.kind.is_some() || !args.filters.profiles.is_empty(),
        },
        full: args.full,
    });
    Ok(pipeline::Export {
        source,
        filter,
        mapper,
        sinks,
        progress: progress::Progress::new(!args.no_progress),
        state,
    })
}

/// The live source's settings; credentials only from the environment (or a config file's
/// `[source.graph]`, whose secret is a reference to the environment), never from arguments.
fn graph_config(args: &args::GraphArgs, file: &FromFile) -> Result<GraphConfig, String> {
    let variable = |given: Option<&str>, name: &str| {
        given
            .map(str::to_owned)
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.trim().is_empty())
    };
    let (Some(tenant_id), Some(client_id), Some(client_secret)) = (
        variable(file.tenant_id.as_deref(), "AZURE_TENANT_ID"),
        variable(file.client_id.as_deref(), "AZURE_CLIENT_ID"),
        variable(
            file.client_secret.as_ref().map(Secret::expose),
            "AZURE_CLIENT_SECRET",
        ),
    ) else {
        return Err("--from graph needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET in the environment".into());
    };
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(format!(
            "--rate must be a positive number of requests per second, not {}",
            args.rate
        ));
    }
    for (option, url) in [
        ("--graph-url", &args.graph_url),
        ("--authority-url", &args.authority_url),
    ] {
        ctiport_fetch::graph::config::check_url(option, url)?;
    }
    let mut config = GraphConfig::new(Credentials {
        tenant_id,
        client_id,
        client_secret: Secret::new(client_secret),
    });
    config.graph_url = args.graph_url.trim_end_matches('/').to_owned();
    config.authority_url = args.authority_url.clone();
    config.rate = args.rate;
    config.concurrency = usize::from(args.concurrency);
    config.page_size = args.page_size;
    config.request_timeout = std::time::Duration::from_secs(args.request_timeout.max(1));
    config.max_pages = args.max_pages.max(1);
    config.max_attempts = args.max_attempts;
    Ok(config)
}

fn report(args: &ExportArgs, mut summary: summary::Summary) -> Result<u8> {
    let code = summary.decide_exit_code();
    tracing::info!(
        profiles = summary.profiles,
        indicators = summary.indicators,
        objects = summary.objects,
        rejected = summary.rejected,
        skipped = summary.skipped,
        filtered = summary.filtered,
        exit_code = code,
        "export finished: {}",
        summary.counts()
    );
    for sink in &summary.sinks {
        let delta = sink.delta.as_ref().map_or(String::new(), |d| {
            format!(
                " ({} new, {} changed, {} revoked; {} unchanged not sent)",
                d.new, d.changed, d.revoked, d.unchanged
            )
        });
        tracing::info!(sink = %sink.sink, objects = sink.objects, status = ?sink.status, "sink {}: {:?}, {} objects{delta}", sink.sink, sink.status, sink.objects);
    }
    if let Some(path) = &args.summary {
        let json = serde_json::to_vec_pretty(&summary).context("serializing the summary")?;
        write_atomically(path, &json)
            .with_context(|| format!("writing the summary to {}", path.display()))?;
    }
    Ok(u8::try_from(code).unwrap_or(EXIT_FAILED))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = ctiport_sink::AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()?;
    Ok(())
}
