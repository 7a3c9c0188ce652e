//! The options of the sinks, turned from arguments (and a config file's `[[sinks]]` tables) into
//! validated settings (a bad value is a usage error, exit code 2).

use std::time::Duration;

use clap::ValueEnum;
use ctiport_net::HttpOptions;
use ctiport_sink::csv::{Column, CsvMode};
use ctiport_sink::misp::{AttributeTable, Distribution, MispOptions, Organisation};
use ctiport_sink::stix::ChunkLimits;

use crate::args::ExportArgs;
use crate::config::SinkConfig;
use crate::sinks::{SinkCredentials, SinkSettings};

/// `--misp-distribution`: by name or by MISP's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MispDistributionArg {
    /// 0: your organisation only.
    #[value(alias = "0")]
    Organisation,
    /// 1: this community only.
    #[value(alias = "1")]
    Community,
    /// 2: connected communities.
    #[value(alias = "2")]
    Connected,
    /// 3: all communities.
    #[value(alias = "3")]
    All,
}

impl From<MispDistributionArg> for Distribution {
    fn from(arg: MispDistributionArg) -> Self {
        match arg {
            MispDistributionArg::Organisation => Distribution::Organisation,
            MispDistributionArg::Community => Distribution::Community,
            MispDistributionArg::Connected => Distribution::Connected,
            MispDistributionArg::All => Distribution::All,
        }
    }
}

/// `--csv-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CsvModeArg {
    /// Every current indicator occurrence.
    Snapshot,
    /// What changed since the sink's last acknowledged run (`--state`), with an `action` column.
    Delta,
}

impl From<CsvModeArg> for CsvMode {
    fn from(arg: CsvModeArg) -> Self {
        match arg {
            CsvModeArg::Snapshot => CsvMode::Snapshot,
            CsvModeArg::Delta => CsvMode::Delta,
        }
    }
}

/// The settings of one sink: the command line's options, overridden by the sink's own
/// `[[sinks]]` table when it comes from a config file (whose values the file loader has checked,
/// naming their keys). `table` is the MISP attribute table of the run.
pub fn sink_settings(
    args: &ExportArgs,
    sink: Option<&SinkConfig>,
    table: &AttributeTable,
) -> Result<SinkSettings, String> {
    let none = SinkConfig::default();
    let sink = sink.unwrap_or(&none);
    let ca_file = sink.ca_file.clone().or_else(|| args.ca_file.clone());
    Ok(SinkSettings {
        chunk_limits: ChunkLimits {
            max_objects: sink.max_bundle_objects.unwrap_or(args.max_bundle_objects),
            max_bytes: sink.max_bundle_bytes.unwrap_or(args.max_bundle_bytes),
        },
        tlp: args.tlp.level().to_owned(),
        misp: misp_options(args, sink, table)?,
        csv_columns: match &sink.csv_columns {
            Some(columns) => columns.clone(),
            None => csv_columns(args)?,
        },
        csv_mode: sink.csv_mode.unwrap_or(args.csv_mode).into(),
        misp_rest: HttpOptions {
            allow_http: sink.misp_allow_http.unwrap_or(args.misp_allow_http),
            ca_file: ca_file.clone(),
            request_timeout: ctiport_sink::misp::rest::config::REQUEST_TIMEOUT,
            max_attempts: ctiport_sink::misp::rest::config::MAX_ATTEMPTS,
        },
        taxii: HttpOptions {
            allow_http: sink.taxii_allow_http.unwrap_or(args.taxii_allow_http),
            ca_file,
            request_timeout: ctiport_sink::taxii::config::REQUEST_TIMEOUT,
            max_attempts: ctiport_sink::taxii::config::MAX_ATTEMPTS,
        },
        taxii_status_timeout: Duration::from_secs(
            sink.taxii_status_timeout
                .unwrap_or(args.taxii_status_timeout),
        ),
        credentials: SinkCredentials {
            taxii_username: sink.taxii_username.clone(),
            taxii_password: sink.taxii_password.clone(),
            misp_key: sink.misp_key.clone(),
        },
    })
}

/// The MISP options of a sink.
fn misp_options(
    args: &ExportArgs,
    sink: &SinkConfig,
    table: &AttributeTable,
) -> Result<MispOptions, String> {
    let name = sink
        .misp_org_name
        .clone()
        .or_else(|| args.misp_org_name.clone())
        .unwrap_or_else(|| args.producer_name.clone());
    if name.trim().is_empty() {
        return Err("--misp-org-name must not be empty".into());
    }
    let uuid = match sink.misp_org_uuid.as_ref().or(args.misp_org_uuid.as_ref()) {
        None => None,
        Some(text) => Some(
            uuid::Uuid::try_parse(text.trim())
                .map_err(|e| format!("--misp-org-uuid '{text}' is not a UUID: {e}"))?,
        ),
    };
    Ok(MispOptions {
        distribution: sink
            .misp_distribution
            .unwrap_or(args.misp_distribution)
            .into(),
        org: Organisation::new(name.trim(), uuid),
        max_attributes: usize::try_from(
            sink.misp_max_attributes.unwrap_or(args.misp_max_attributes),
        )
        .unwrap_or(usize::MAX),
        tlp: args.tlp.level().to_owned(),
        table: table.clone(),
    })
}

/// The columns of `csv:` sinks: `--csv-columns`, or the default set.
fn csv_columns(args: &ExportArgs) -> Result<Vec<Column>, String> {
    match &args.csv_columns {
        None => Ok(Column::DEFAULT.to_vec()),
        Some(list) => Column::parse_list(list).map_err(|e| format!("--csv-columns: {e}")),
    }
}
