//! The user-facing options of the MISP sinks, validated once when the run is configured.

use uuid::Uuid;

use super::mapping::AttributeTable;

/// The default of `--misp-max-attributes`: MISP handles events of thousands of attributes well,
/// not hundreds of thousands (reference `misp.md` §3.8).
pub const DEFAULT_MAX_ATTRIBUTES: usize = 10_000;

/// MISP event distribution levels a file export can carry (4, sharing group, needs a sharing group
/// that only the receiving instance knows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distribution {
    /// 0: your organisation only (MISP's own default).
    #[default]
    Organisation,
    /// 1: this community only.
    Community,
    /// 2: connected communities.
    Connected,
    /// 3: all communities.
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
