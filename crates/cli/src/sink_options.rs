//! The options of the MISP and CSV sinks, turned from arguments into validated settings
//! (a bad value is a usage error, exit code 2).

use clap::ValueEnum;
use ctiport_sink::csv::Column;
use ctiport_sink::misp::{AttributeTable, Distribution, MispOptions, Organisation};

use crate::args::ExportArgs;

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

/// The MISP options of the run; the attribute table is loaded (and validated) here, honouring
/// `--mappings`.
pub fn misp_options(args: &ExportArgs) -> Result<MispOptions, String> {
    let table = AttributeTable::load(args.mappings.as_deref())
        .map_err(|e| format!("mapping table error: {e}"))?;
    let name = args
        .misp_org_name
        .clone()
        .unwrap_or_else(|| args.producer_name.clone());
    if name.trim().is_empty() {
        return Err("--misp-org-name must not be empty".into());
    }
    let uuid = match &args.misp_org_uuid {
        None => None,
        Some(text) => Some(
            uuid::Uuid::try_parse(text.trim())
                .map_err(|e| format!("--misp-org-uuid '{text}' is not a UUID: {e}"))?,
        ),
    };
    Ok(MispOptions {
        distribution: args.misp_distribution.into(),
        org: Organisation::new(name.trim(), uuid),
        max_attributes: usize::try_from(args.misp_max_attributes).unwrap_or(usize::MAX),
        tlp: args.tlp.level().to_owned(),
        table,
    })
}

/// The columns of `csv:` sinks: `--csv-columns`, or the default set.
pub fn csv_columns(args: &ExportArgs) -> Result<Vec<Column>, String> {
    match &args.csv_columns {
        None => Ok(Column::DEFAULT.to_vec()),
        Some(list) => Column::parse_list(list).map_err(|e| format!("--csv-columns: {e}")),
    }
}
