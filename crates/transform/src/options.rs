//! User-facing choices that shape the STIX output.

use std::str::FromStr;

/// How an `actor` profile is represented (reference `stix-taxii.md` §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ActorAs {
    #[default]
    ThreatActor,
    IntrusionSet,
    /// An intrusion-set `attributed-to` a threat-actor; indicators indicate the intrusion-set.
    Both,
}

impl FromStr for ActorAs {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "threat-actor" => Ok(ActorAs::ThreatActor),
            "intrusion-set" => Ok(ActorAs::IntrusionSet),
            "both" => Ok(ActorAs::Both),
            other => Err(format!(
                "'{other}' is not one of threat-actor, intrusion-set, both"
            )),
        }
    }
}

/// The TLP levels a marking set can provide.
pub const TLP_LEVELS: [&str; 5] = ["clear", "green", "amber", "amber+strict", "red"];

#[derive(Clone, Debug)]
pub struct MappingOptions {
    pub actor_as: ActorAs,
    /// Leave profile aliases out (OpenCTI merges entities that share an alias).
    pub include_aliases: bool,
    /// Emit SCOs linked by `indicator --based-on--> SCO`.
    pub observables: bool,
    /// TLP level: one of [`TLP_LEVELS`].
    pub tlp: String,
    /// Marking id set in `markings.json`: `tlp2`, `tlp1`, `opencti`.
    pub marking_set: String,
    /// Name of the producer identity every object's `created_by_ref` points at.
    pub producer_name: String,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            actor_as: ActorAs::ThreatActor,
            include_aliases: true,
            observables: false,
            tlp: "amber".into(),
            marking_set: "tlp2".into(),
            producer_name: DEFAULT_PRODUCER.into(),
        }
    }
}

pub const DEFAULT_PRODUCER: &str = "Microsoft Defender Threat Intelligence";
