//! An intel profile → its STIX objects.
//!
//! | Graph property | STIX |
//! |---|---|
//! | `kind: actor` | `threat-actor` (default), `intrusion-set`, or both linked by `attributed-to` |
//! | `kind: tool` | `tool` |
//! | `title` | `name` |
//! | `aliases` | `aliases` (optional; without duplicates and without the name) |
//! | `description` (else `summary`) | `description`, markdown kept, CRLF → LF |
//! | `firstActiveDateTime` | `first_seen` (actors), `created`/`modified` |
//! | `countriesOrRegionsOfOrigin` / `sponsorStates` | `location` + `located-at` / `originates-from` |
//! | `targets` | sector `identity` (`identity_class: class`) + `targets` |
//! | `tradecraft` | a `note` on the profile object(s) |
//! | `id` | external reference `microsoft-defender-threat-intelligence` |
//! | (the profile as a whole) | a `report` of the profile object(s) and the tradecraft note |

use ctiport_model::graph::{CountryOrRegion, FormattedContent, IntelProfile, ProfileKind};
use ctiport_model::stix::{
    ExternalReference, Identity, Location, Note, ProfileObject, Report, StixObject,
};
use ctiport_model::timestamp::Timestamp;

use crate::context::Context;
use crate::ids::sdo_id;
use crate::options::ActorAs;

/// The `source_name` of external references to MDTI records.
pub const MDTI_SOURCE_NAME: &str = "microsoft-defender-threat-intelligence";

/// A profile's objects, and the id indicators point at.
pub struct ProfileObjects {
    pub indicated_ref: String,
    pub objects: Vec<StixObject>,
    /// Values that were consciously dropped, for the log.
    pub dropped: Vec<String>,
}

/// The `created` of a profile's objects: its first activity, or the epoch when unknown (there is
/// no other date on a profile, and `now` would break reproducibility).
pub fn profile_created(profile: &IntelProfile) -> Timestamp {
    profile.first_active.unwrap_or_else(Timestamp::epoch)
}

pub fn map_profile(profile: &IntelProfile, ctx: &Context) -> Result<ProfileObjects, String> {
    let title = profile.title.clone().ok_or("profile has no title")?;
    let types: &[&'static str] = match (&profile.kind, ctx.options.actor_as) {
        (ProfileKind::Actor, ActorAs::ThreatActor) => &["threat-actor"],
        (ProfileKind::Actor, ActorAs::IntrusionSet) => &["intrusion-set"],
        (ProfileKind::Actor, ActorAs::Both) => &["intrusion-set", "threat-actor"],
        (ProfileKind::Tool, _) => &["tool"],
        (ProfileKind::Other(kind), _) => return Err(format!("unknown profile kind '{kind}'")),
    };
    let created = profile_created(profile);
    let natural_key = format!("mdti-profile|{}", profile.id);
    let description = profile
        .description
        .as_ref()
        .or(profile.summary.as_ref())
        .map(content_text);
    let aliases = if ctx.options.include_aliases {
        clean_aliases(&title, &profile.aliases)
    } else {
        Vec::new()
    };

    let mut objects = Vec::new();
    let mut dropped = Vec::new();
    let mut ids = Vec::new();
    for object_type in types {
        let id = sdo_id(object_type, &natural_key);
        let mut header = ctx.header(object_type, id.clone(), created, created);
        header.external_references = vec![ExternalReference {
            source_name: MDTI_SOURCE_NAME.into(),
            description: None,
            external_id: Some(profile.id.clone()),
        }];
        objects.push(StixObject::Profile(ProfileObject {
            header,
            name: title.clone(),
            description: description.clone(),
            aliases: aliases.clone(),
            first_seen: if *object_type == "tool" {
                None
            } else {
                profile.first_active
            },
        }));
        ids.push(id);
    }
    let relate = |relationship_type: &'static str, source: &str, target: &str| {
        ctx.relationship(relationship_type, source, target, created, created)
    };
    // The object that carries behaviour (indicators, targets): the intrusion-set when there is one.
    let primary = ids[0].clone();
    if let [intrusion_set, threat_actor] = ids.as_slice() {
        objects.push(relate("attributed-to", intrusion_set, threat_actor));
    }

    let origin = match types.last() {
        Some(&"threat-actor") => Some(("located-at", ids[ids.len() - 1].clone())),
        Some(&"intrusion-set") => Some(("originates-from", primary.clone())),
        _ => None,
    };
    for place in &profile.countries_or_regions {
        match (location(place, ctx), &origin) {
            (Some(location), Some((relationship_type, source))) => {
                objects.push(relate(relationship_type, source, location.id()));
                objects.push(location);
            }
            (Some(_), None) => dropped.push(format!(
                "country/region {} (STIX suggests no origin relationship for a tool)",
                describe(place)
            )),
            (None, _) => dropped.push(format!(
                "country/region {} (neither an ISO 3166-1 alpha-2 code nor a STIX region)",
                describe(place)
            )),
        }
    }
    for target in &profile.targets {
        let sector = sector_identity(target, ctx);
        objects.push(relate("targets", &primary, sector.id()));
        objects.push(sector);
    }
    if let Some(tradecraft) = &profile.tradecraft {
        objects.push(StixObject::Note(Note {
            header: ctx.header(
                "note",
                sdo_id("note", &format!("tradecraft|{}", profile.id)),
                created,
                created,
            ),
            summary: Some(format!("Tradecraft: {title}")),
            content: content_text(tradecraft),
            authors: vec![ctx.options.producer_name.clone()],
            object_refs: ids.clone(),
        }));
    }
    objects.push(profile_report(profile, &title, types, &objects, ctx));
    Ok(ProfileObjects {
        indicated_ref: primary,
        objects,
        dropped,
    })
}

/// The profile as one `report`: its profile object(s) and tradecraft note, so that consumers
/// that import by report (misp-stix makes one MISP event of it, OpenCTI a Report container) keep
/// the note with the actor or tool. Indicators are not listed: a profile can have millions, and
/// each already points at the profile through its `indicates` relationship.
fn profile_report(
    profile: &IntelProfile,
    title: &str,
    types: &[&'static str],
    objects: &[StixObject],
    ctx: &Context,
) -> StixObject {
    let created = profile_created(profile);
    let object_refs = objects
        .iter()
        .filter(|o| matches!(o, StixObject::Profile(_) | StixObject::Note(_)))
        .map(|o| o.id().to_owned())
        .collect();
    StixObject::Report(Report {
        header: ctx.header(
            "report",
            sdo_id("report", &format!("mdti-profile|{}", profile.id)),
            created,
            created,
        ),
        name: format!("MDTI intel profile: {title}"),
        description: profile.summary.as_ref().map(content_text),
        report_types: types.to_vec(),
        published: created,
        object_refs,
    })
}

/// Markdown and text are kept verbatim except for line endings, which become `\n`.
fn content_text(content: &FormattedContent) -> String {
    content.content.replace("\r\n", "\n")
}

fn clean_aliases(title: &str, aliases: &[String]) -> Vec<String> {
    let mut seen = vec![title.trim().to_lowercase()];
    let mut kept = Vec::new();
    for alias in aliases {
        let key = alias.trim().to_lowercase();
        if !key.is_empty() && !seen.contains(&key) {
            seen.push(key);
            kept.push(alias.trim().to_owned());
        }
    }
    kept
}

fn describe(place: &CountryOrRegion) -> String {
    format!(
        "'{}' / '{}'",
        place.code.as_deref().unwrap_or(""),
        place.label.as_deref().unwrap_or("")
    )
}

/// STIX `region-ov`.
const REGIONS: [&str; 29] = [
    "africa",
    "eastern-africa",
    "middle-africa",
    "northern-africa",
    "southern-africa",
    "western-africa",
    "americas",
    "latin-america-caribbean",
    "south-america",
    "caribbean",
    "central-america",
    "northern-america",
    "asia",
    "central-asia",
    "eastern-asia",
    "southern-asia",
    "south-eastern-asia",
    "western-asia",
    "europe",
    "eastern-europe",
    "northern-europe",
    "southern-europe",
    "western-europe",
    "oceania",
    "australia-new-zealand",
    "melanesia",
    "micronesia",
    "polynesia",
    "antarctica",
];

/// A country (ISO 3166-1 alpha-2 code) or a STIX region; `None` when it is neither.
fn location(place: &CountryOrRegion, ctx: &Context) -> Option<StixObject> {
    let code = place
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()));
    let region_of = |text: &str| {
        let term = text.trim().to_lowercase().replace([' ', '_'], "-");
        REGIONS.contains(&term.as_str()).then_some(term)
    };
    let label = place
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    let (key, country, region) = match code {
        Some(code) => (
            format!(
                "country|{}|{}",
                code.to_uppercase(),
                label.clone().unwrap_or_default()
            ),
            Some(code.to_uppercase()),
            None,
        ),
        None => {
            let region = place
                .code
                .as_deref()
                .and_then(region_of)
                .or_else(|| label.as_deref().and_then(region_of))?;
            (format!("region|{region}"), None, Some(region))
        }
    };
    let epoch = Timestamp::epoch();
    Some(StixObject::Location(Location {
        header: ctx.header("location", sdo_id("location", &key), epoch, epoch),
        name: label,
        country,
        region,
    }))
}

/// A targeted sector as an identity of class `class`, named after the MDTI target string. The id
/// is keyed on the exact string so that the object's content depends on nothing else.
fn sector_identity(target: &str, ctx: &Context) -> StixObject {
    let epoch = Timestamp::epoch();
    StixObject::Identity(Identity {
        header: ctx.header(
            "identity",
            sdo_id("identity", &format!("sector|{}", target.trim())),
            epoch,
            epoch,
        ),
        name: target.trim().to_owned(),
        description: None,
        identity_class: "class",
        sectors: ctx.mappings.sectors_for(target),
        contact_information: None,
    })
}
