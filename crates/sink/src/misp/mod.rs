//! MISP output: one MISP event per intel profile (threat actor or tool), written as a MISP feed
//! directory (`--to misp-feed:<dir>`).
//!
//! One file per concern:
//! * [`config`]: the options of both MISP sinks (distribution, creator organisation, attribute
//!   limit) and of `misp-feed:`;
//! * [`mapping`]: the attribute table (`mappings/misp-attributes.json`): value type → MISP type,
//!   category, `to_ids`;
//! * [`normalize`]: the value MISP stores (and the values it would drop), so MISP drops nothing;
//! * [`uuid`]: deterministic event and attribute uuids;
//! * [`text`]: free text for MISP's utf8mb3 columns, MISP's timestamp forms;
//! * [`event`]: the MISP core format documents and manifest entries; [`report`]: the EventReport;
//! * [`batch`]: an event's attributes (merging what MISP would collapse);
//! * [`builder`]: the mapped stream → finished events (one per profile, split when large);
//! * [`merge`]: a feed event against the file it replaces (changes and removals MISP takes);
//! * [`feed`]: the sink that writes the feed (`--to misp-feed:`);
//! * [`rest`]: the sink that pushes events to a MISP instance (`--to misp:`).
//!
//! Facts about MISP come from the reference `misp.md`; the choices it leaves open are documented
//! where they are made and in the README.

mod batch;
mod builder;
pub(crate) mod config;
pub(crate) mod event;
mod feed;
mod mapping;
mod merge;
mod normalize;
mod report;
mod rest;
mod text;
mod uuid;

pub use config::MispFeedConfig;
pub use mapping::AttributeTable;
pub use rest::MispRestConfig;
