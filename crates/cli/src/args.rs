//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ctiport",
    version,
    about = "Export Microsoft Defender Threat Intelligence intel profiles and indicators to STIX 2.1",
    long_about = "Export Microsoft Defender Threat Intelligence (MDTI) intel profiles (threat actors and tools) and \
their indicators from the Microsoft Graph Threat Intelligence API, or from a dump of it, to STIX 2.1.\n\n\
Exit codes: 0 success; 1 the run failed (a sink or the source failed); 2 usage or configuration error; \
3 partial (some records were rejected, everything else was delivered)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr: human-readable text, or one JSON object per line for schedulers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CTIPORT_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Minimum level of log lines (RUST_LOG, when set, takes precedence).
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Info, env = "CTIPORT_LOG_LEVEL")]
    pub log_level: LogLevel,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the export variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Export profiles and indicators from a source to one or more sinks.
    #[command(
        override_usage = "ctiport export --from <SOURCE> --to <SINK>... [OPTIONS]\n       ctiport export --config <FILE> [OPTIONS]"
    )]
    Export(ExportArgs),
    /// Check STIX bundle files (a file, or every *.json in a directory) with ctiport's own rules.
    Validate {
        /// Bundle file or directory of bundle files.
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where records come from. `graph`: the live Microsoft Graph API, with credentials from
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET. `dir:<path>`: a Graph dump
    /// directory (see the README for its layout).
    #[arg(long, value_name = "SOURCE", required_unless_present = "config")]
    pub from: Option<String>,

    /// Read the export's options from a TOML file (see samples/ctiport.toml and the README,
    /// "Config file"). Options given on the command line win over the file; `--to` replaces the
    /// file's sinks.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub graph: GraphArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Enrich hostname and IP indicators: `hosts` (registrar, ASN, country, hosting provider,
    /// netblock) and/or `reputation` (classification, score, rules). Live: one or two extra
    /// requests per unique host; from a dump: its hosts/ and reputation/ folders.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    pub enrich: Vec<EnrichArg>,

    /// Most unique hosts enriched in one run (each costs up to two requests when live).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub enrich_max: usize,

    /// Where records go; repeat for several sinks fed by the same run.
    /// `stix:<file.json>`: one STIX 2.1 bundle.
    /// `stix:<dir>/` (trailing slash): chunked, self-contained bundles <dir>/bundle-00001.json, ….
    /// `ndjson:<file>`: one STIX object per line.
    /// `misp-feed:<dir>`: a MISP feed (manifest.json, one <event uuid>.json per profile, hashes.csv).
    /// `csv:<file>`: one CSV row per indicator occurrence (see --csv-columns).
    /// `taxii:<collection url>`: push to a TAXII 2.1 collection, e.g.
    ///   taxii:https://ti.example/api1/collections/<id>/ (credentials from TAXII_USERNAME
    ///   and TAXII_PASSWORD).
    /// `misp:<base url>`: push the MISP events to an instance over its REST API, e.g.
    ///   misp:https://misp.example.org/ (API key from MISP_KEY).
    #[arg(
        long = "to",
        value_name = "SINK",
        required_unless_present = "config",
        verbatim_doc_comment
    )]
    pub to: Vec<String>,

    /// Write a JSON run summary (counts, per-sink status, rejected records) to this file.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,

    /// Keep versions and per-sink acknowledgements in this SQLite file and export incrementally:
    /// each sink receives only what it does not hold yet (new and changed objects, with a later
    /// `modified`, and revocations of what the source stopped listing). Created if missing.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// With --state: send every sink the whole current state again, whatever it acknowledged.
    #[arg(long, requires = "state")]
    pub full: bool,

    /// The options of the sinks, each declared by its sink's config (`--max-bundle-objects`,
    /// `--csv-columns`, `--taxii-status-timeout`, …).
    #[command(flatten)]
    pub sinks: ctiport_sink::SinkArgs,

    /// How an actor profile is represented: a threat-actor, an intrusion-set, or both (the
    /// intrusion-set attributed-to the threat-actor; indicators then indicate the intrusion-set).
    #[arg(long, value_enum, default_value_t = ActorAsArg::ThreatActor)]
    pub actor_as: ActorAsArg,

    /// Leave profile aliases out (some platforms merge every entity that shares an alias).
    #[arg(long)]
    pub no_aliases: bool,

    /// Also emit cyber-observable objects (domain-name, ipv4-addr, url, file, …) with spec ids,
    /// linked by `indicator --based-on--> observable`.
    #[arg(long)]
    pub observables: bool,

    /// TLP marking applied to every object.
    #[arg(long, value_enum, default_value_t = TlpArg::Amber)]
    pub tlp: TlpArg,

    /// Which marking-definition ids represent the TLP level: OASIS TLP 2.0 (`tlp2`), the STIX 2.1
    /// predefined TLP 1.0 objects (`tlp1`; no AMBER+STRICT), or the ids OpenCTI uses (`opencti`).
    #[arg(long, value_name = "SET", default_value = "tlp2")]
    pub marking_set: String,

    /// Directory with mapping tables that replace the built-in ones, file by file
    /// (artifact-types.json, unclassified-kinds.json, sectors.json, sources.json, ttl.json, markings.json, misp-attributes.json).
    #[arg(long, value_name = "DIR")]
    pub mappings: Option<PathBuf>,

    /// Name of the producer identity that every object's created_by_ref points at.
    #[arg(long, value_name = "NAME", default_value = ctiport_transform::options::DEFAULT_PRODUCER)]
    pub producer_name: String,

    /// Never draw a progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// Options of `--from graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Graph endpoint with its version: v1.0 (default) or beta.
    #[arg(long, value_name = "URL", default_value = ctiport_fetch::graph::config::DEFAULT_GRAPH_URL, env = "CTIPORT_GRAPH_URL")]
    pub graph_url: String,

    /// Microsoft Entra authority that issues the token.
    #[arg(long, value_name = "URL", default_value = ctiport_fetch::graph::config::DEFAULT_AUTHORITY_URL, env = "CTIPORT_AUTHORITY_URL")]
    pub authority_url: String,

    /// Requests per second to Graph, for the whole process (all workers share one limiter).
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub rate: f64,

    /// Profiles whose indicator pages are fetched at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// $top to request per page (default: the service's own page size).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: Option<u32>,

    /// Seconds before a single request is abandoned (and retried).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub request_timeout: u64,

    /// Most pages followed in one collection, against runaway paging.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_pages: usize,

    /// Tries per request, the first included, for 429, 5xx, resets and timeouts.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
}

/// Filters of `ctiport export`: what is left out is counted as `filtered` in the run summary.
const FILTERS: &str = "Filters";

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only profiles of this kind, and their indicators. Live: sent as $filter=kind eq '…';
    /// from a dump: other profiles' indicator files are not read.
    #[arg(long, value_enum, help_heading = FILTERS)]
    pub kind: Option<KindArg>,

    /// Only this profile (exact id) and its indicators; repeat for several. Profiles come out in
    /// the order given. Live: fetched by id; from a dump: other profiles' indicator files are not
    /// read. An id the source does not have is rejected.
    #[arg(long = "profile", value_name = "ID", help_heading = FILTERS)]
    pub profiles: Vec<String>,

    /// Only indicators from these sources (repeat, or comma-separated); `microsoft` also matches
    /// Graph's `microsoftDefenderThreatIntelligence`, `osint` its `openSourceIntelligence`.
    #[arg(long = "source", value_enum, value_delimiter = ',', value_name = "SOURCE", ignore_case = true, help_heading = FILTERS)]
    pub sources: Vec<SourceArg>,

    /// Only indicators of these types (repeat, or comma-separated; case-insensitive): Graph
    /// artifact types (hostname, ipAddress, host, sslCertificate, unclassifiedArtifact, …) or
    /// value types (domain, ipv4, ipv6, ipv4-cidr, ipv6-cidr, url, email, md5, sha1, sha256,
    /// sha512, x509-sha1), which match what the value is classified as.
    #[arg(long = "artifact-type", value_delimiter = ',', value_name = "TYPE", help_heading = FILTERS)]
    pub artifact_types: Vec<String>,

    /// Only indicators seen on or after this date: RFC 3339 (2024-05-01T00:00:00Z) or a date
    /// (2024-05-01, midnight UTC). Compares lastSeenDateTime, else firstSeenDateTime; an indicator
    /// with neither is left out.
    #[arg(long, value_name = "DATE", help_heading = FILTERS)]
    pub seen_since: Option<String>,

    /// Only host indicators whose reputation score is at least this (0-100); needs
    /// `--enrich reputation`. Indicators without a score (hashes, URLs, hosts not looked up) are
    /// kept.
    #[arg(long, value_name = "SCORE", value_parser = clap::value_parser!(u8).range(0..=100), help_heading = FILTERS)]
    pub min_reputation: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    #[value(alias = "microsoftDefenderThreatIntelligence")]
    Microsoft,
    #[value(alias = "openSourceIntelligence")]
    Osint,
    Public,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EnrichArg {
    Hosts,
    Reputation,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    Actor,
    Tool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ActorAsArg {
    ThreatActor,
    IntrusionSet,
    Both,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TlpArg {
    Clear,
    Green,
    Amber,
    #[value(name = "amber+strict")]
    AmberStrict,
    Red,
}

impl TlpArg {
    pub fn level(self) -> &'static str {
        match self {
            TlpArg::Clear => "clear",
            TlpArg::Green => "green",
            TlpArg::Amber => "amber",
            TlpArg::AmberStrict => "amber+strict",
            TlpArg::Red => "red",
        }
    }
}
