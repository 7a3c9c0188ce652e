//! The options of the MISP sinks: the event options both take (distribution, creator
//! organisation, attribute limit), and `--to misp-feed:<dir>`, which takes nothing else.
//! (`--to misp:<base url>` adds its connection, in `rest::config`.)

use std::path::Path;

use uuid::Uuid;

use super::feed::MispFeedSink;
use super::mapping::AttributeTable;
use crate::SinkError;
use crate::options::{not_blank, whole_number};
use crate::registry::{Built, NoFileKeys, SinkConfig, SinkContext};

/// The default of `--misp-max-attributes`: MISP handles events of thousands of attributes well,
/// not hundreds of thousands (reference `misp.md` §3.8).
pub const DEFAULT_MAX_ATTRIBUTES: usize = 10_000;

/// MISP event distribution levels a file export can carry (4, sharing group, needs a sharing group
/// that only the receiving instance knows); given by name or by MISP's number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    /// 0: your organisation only (MISP's own default).
    #[default]
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

impl Distribution {
    pub fn level(self) -> u8 {
        match self {
            Distribution::Organisation => 0,
            Distribution::Community => 1,
            Distribution::Connected => 2,
            Distribution::All => 3,
        }
    }
}

/// The creator organisation (`Orgc`) of every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organisation {
    pub name: String,
    pub uuid: Uuid,
}

impl Organisation {
    /// An organisation with the given uuid, or a stable uuid derived from its name.
    pub fn new(name: &str, uuid: Option<Uuid>) -> Self {
        Organisation {
            name: name.to_owned(),
            uuid: uuid.unwrap_or_else(|| super::uuid::org_uuid(name)),
        }
    }
}

/// Everything that shapes the MISP events ctiport writes.
#[derive(Clone, Debug)]
pub struct MispOptions {
    pub distribution: Distribution,
    pub org: Organisation,
    /// Most attributes in one event; a larger profile is split into linked events.
    pub max_attributes: usize,
    /// The TLP level of the run (`clear`, `green`, `amber`, `amber+strict`, `red`).
    pub tlp: String,
    pub table: AttributeTable,
}

/// The event options of `misp-feed:` and `misp:` sinks.
#[derive(Clone, Debug, clap::Args)]
pub struct MispEventArgs {
    /// Distribution of the events of `misp-feed:` and `misp:` sinks: organisation (0, your
    /// organisation only), community (1), connected (2) or all (3).
    #[arg(
        long,
        value_enum,
        value_name = "LEVEL",
        default_value = "organisation",
        ignore_case = true
    )]
    pub misp_distribution: Distribution,

    /// Name of the organisation that creates the MISP events (`Orgc`; a `misp:` push keeps it
    /// only for a sync user, otherwise the key's organisation creates them) [default:
    /// --producer-name].
    #[arg(long, value_name = "NAME", value_parser = not_blank)]
    pub misp_org_name: Option<String>,

    /// UUID of that organisation, as the importing MISP instances know it [default: a UUID
    /// derived from its name].
    #[arg(long, value_name = "UUID", value_parser = organisation_uuid)]
    pub misp_org_uuid: Option<Uuid>,

    /// Most attributes in one MISP event; a larger profile is split into linked events
    /// (`extends_uuid`).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ATTRIBUTES as u64, value_parser = whole_number(1, 1_000_000))]
    pub misp_max_attributes: u64,
}

fn organisation_uuid(text: &str) -> Result<Uuid, String> {
    Uuid::try_parse(text.trim()).map_err(|_| format!("'{text}' is not a UUID"))
}

impl MispEventArgs {
    /// The options of the events, with what the run adds (the TLP level, the attribute table,
    /// the producer as the default organisation).
    pub fn options(&self, context: &SinkContext) -> Result<MispOptions, SinkError> {
        let name = self
            .misp_org_name
            .clone()
            .unwrap_or_else(|| context.producer_name.clone());
        if name.trim().is_empty() {
            return Err(SinkError::Other("--misp-org-name must not be empty".into()));
        }
        Ok(MispOptions {
            distribution: self.misp_distribution,
            org: Organisation::new(name.trim(), self.misp_org_uuid),
            max_attributes: usize::try_from(self.misp_max_attributes).unwrap_or(usize::MAX),
            tlp: context.tlp.clone(),
            table: context.table.clone(),
        })
    }
}

/// `--to misp-feed:<dir>`.
#[derive(Clone, Debug, clap::Args)]
pub struct MispFeedConfig {
    #[command(flatten)]
    pub events: MispEventArgs,
}

impl SinkConfig for MispFeedConfig {
    const NAME: &'static str = "misp-feed:";
    type FileKeys = NoFileKeys;

    fn build(self, target: &str, _: NoFileKeys, context: &SinkContext) -> Built {
        let options = self.events.options(context)?;
        Ok(Box::new(MispFeedSink::create(Path::new(target), options)?))
    }
}
