//! Synthetic Graph records in the documented shapes (§6, §7), members in the documented order.

use rand::Rng;

use super::values::{Values, base64_padded, hex, pick};
use super::vocab::{
    ACTOR_ADJECTIVES, ANIMAL_ADJECTIVES, ANIMALS, COMPONENTS, COOKIES, COUNTRIES, ELEMENT_ALIASES,
    FAMILIES, HOSTING_PROVIDERS, REGISTRARS, TARGETS, TECHNIQUES, TOOL_KINDS, TOOL_PREFIXES,
    TOOL_SUFFIXES, TRACKERS, WORDS,
};
use crate::json::{ObjectWriter, string};
use crate::rng::{SplitMix64, guid};
use crate::timefmt::{Fraction, rfc3339};

const NS: &str = "microsoft.graph.security";

/// 2019-01-01 .. 2025-06-01, the span of generated sightings.
const SEEN_FROM: i64 = 1_546_300_800;
const SEEN_TO: i64 = 1_748_736_000;
/// Nothing is "last seen" after 2025-10-01.
const SEEN_CAP: i64 = 1_759_276_800;

/// A timestamp in one of the precisions Graph mixes (§7.6).
pub fn timestamp(rng: &mut SplitMix64, secs: i64) -> String {
    let fraction = match rng.random_range(0..100) {
        0..30 => Fraction::None,
        30..55 => Fraction::Millis(0),
        55..95 => Fraction::Millis(rng.random_range(0..1000)),
        _ => Fraction::Ticks(rng.random_range(0..10_000_000)),
    };
    rfc3339(secs, fraction)
}

fn formatted(content: &str, format: &str) -> String {
    ObjectWriter::new()
        .str("@odata.type", &format!("{NS}.formattedContent"))
        .str("content", content)
        .str("format", format)
        .finish()
}

/// What the generator remembers about each profile (small: N of these).
#[derive(Clone, Debug)]
pub struct ProfileMeta {
    pub id: String,
    pub record: String,
}

/// Hands out unique profile titles: every adjective × family (or prefix × suffix) combination
/// in a seeded order, then numbered `Storm-####` / `Tool-####` names.
#[derive(Debug)]
pub struct Titles {
    actors: Vec<(usize, usize)>,
    tools: Vec<(usize, usize)>,
    storms: u64,
    extra_tools: u64,
}

impl Titles {
    pub fn new(rng: &mut SplitMix64) -> Self {
        let mut actors: Vec<(usize, usize)> = (0..ACTOR_ADJECTIVES.len())
            .flat_map(|a| (0..FAMILIES.len()).map(move |f| (a, f)))
            .collect();
        let mut tools: Vec<(usize, usize)> = (0..TOOL_PREFIXES.len())
            .flat_map(|p| (0..TOOL_SUFFIXES.len()).map(move |s| (p, s)))
            .collect();
        shuffle(rng, &mut actors);
        shuffle(rng, &mut tools);
        Titles {
            actors,
            tools,
            storms: 0,
            extra_tools: 0,
        }
    }
}

fn shuffle<T>(rng: &mut SplitMix64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

/// One intelligence profile; `index` 1 gets a slug id like old beta examples (`actinium`).
pub fn profile(
    rng: &mut SplitMix64,
    values: &Values,
    titles: &mut Titles,
    index: u64,
) -> ProfileMeta {
    let is_actor = rng.random_bool(0.65);
    let (title, origin, tool_kind) = if is_actor {
        match titles.actors.pop() {
            Some((a, f)) => {
                let (family, origin) = FAMILIES[f];
                (format!("{} {family}", ACTOR_ADJECTIVES[a]), origin, None)
            }
            None => {
                titles.storms += 1;
                let origin = rng
                    .random_bool(0.5)
                    .then(|| COUNTRIES[rng.random_range(0..COUNTRIES.len())]);
                (format!("Storm-{}", 1000 + titles.storms), origin, None)
            }
        }
    } else {
        // Tools carry no origin: STIX has no origin relationship for malware and tools.
        let origin = None;
        let name = match titles.tools.pop() {
            Some((p, s)) => format!("{}{}", TOOL_PREFIXES[p], TOOL_SUFFIXES[s]),
            None => {
                titles.extra_tools += 1;
                format!("Tool-{}", 1000 + titles.extra_tools)
            }
        };
        let kind = tool_kind_of(&name);
        (name, origin, Some(kind))
    };

    let id = if index == 1 {
        title
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    } else if rng.random_bool(0.15) {
        values.base64_profile_id(rng)
    } else {
        values.hex_profile_id(rng)
    };

    let aliases = if is_actor {
        actor_aliases(rng)
    } else {
        tool_aliases(rng, &title)
    };
    let mut targets: Vec<String> = Vec::new();
    for _ in 0..rng.random_range(0..=5) {
        let t = pick(rng, TARGETS).to_owned();
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let countries = match origin {
        Some((label, code)) => format!(
            "[{}]",
            ObjectWriter::new()
                .str(
                    "@odata.type",
                    &format!("{NS}.intelligenceProfileCountryOrRegionOfOrigin")
                )
                .str("label", label)
                .str("code", code)
                .finish()
        ),
        None => "[]".to_owned(),
    };
    let first_active = (!rng.random_bool(0.05)).then(|| {
        let secs = rng.random_range(1_199_145_600..1_704_067_200); // 2008 .. 2024
        timestamp(rng, secs)
    });

    let sectors: Vec<&str> = targets
        .iter()
        .map(|t| t.split(':').next().unwrap_or(t).trim())
        .collect();
    let victims = match sectors.as_slice() {
        [] => "a broad range of".to_owned(),
        [one] => (*one).to_owned(),
        [first, .., last] if first == last => (*first).to_owned(),
        [first, .., last] => format!("{first} and {last}"),
    };
    let summary = match tool_kind {
        None => {
            let who = match origin {
                Some((country, _)) => format!(
                    "{} {country}-based activity group",
                    article(&country.to_lowercase())
                ),
                None => "a financially motivated activity group".to_owned(),
            };
            format!(
                "{title} is {who} that Microsoft tracks through telemetry and incident response. Activity attributed to {title} has been observed against {victims} organizations."
            )
        }
        Some(kind) => format!(
            "{title} is {} {kind} that Microsoft has observed in intrusions against {victims} organizations since {}.",
            article(kind),
            rng.random_range(2012..2025)
        ),
    };
    let mut techniques: Vec<(&str, &str)> = TECHNIQUES.to_vec();
    shuffle(rng, &mut techniques);
    techniques.truncate(rng.random_range(3..=5));
    let description = [
        "## Snapshot".to_owned(),
        summary.clone(),
        String::new(),
        "## Activity".to_owned(),
        format!(
            "- Campaigns observed in {} and {}.",
            rng.random_range(2019..2023),
            rng.random_range(2023..2026)
        ),
        format!(
            "- Infrastructure rotates through `*.{}` style domains and short-lived VPS hosts.",
            pick(rng, WORDS)
        ),
        String::new(),
        "## Recommendations".to_owned(),
        "1. Enforce multifactor authentication for every remote access path.".to_owned(),
        "2. Hunt for the indicators below and block them at the perimeter.".to_owned(),
    ]
    .join("\r\n");
    let mut tradecraft = vec!["## Tactics, techniques and procedures".to_owned()];
    for (tid, name) in &techniques {
        tradecraft.push(format!(
            "- **{tid}** {name}: observed during {}.",
            [
                "initial access",
                "execution",
                "persistence",
                "lateral movement",
                "exfiltration"
            ][rng.random_range(0..5)]
        ));
    }
    let tradecraft = tradecraft.join("\r\n");

    let record = ObjectWriter::new()
        .str("@odata.type", &format!("#{NS}.intelligenceProfile"))
        .str("id", &id)
        .str("kind", if is_actor { "actor" } else { "tool" })
        .str("title", &title)
        .opt_str("firstActiveDateTime", first_active.as_deref())
        .strings("aliases", &aliases)
        .strings("targets", &targets)
        .raw("countriesOrRegionsOfOrigin", &countries)
        .raw("summary", &formatted(&summary, "text"))
        .raw("description", &formatted(&description, "markdown"))
        .raw("tradecraft", &formatted(&tradecraft, "markdown"))
        .finish();
    ProfileMeta { id, record }
}

/// What a tool is, from its name's suffix (`…RAT` is a remote access trojan).
fn tool_kind_of(name: &str) -> &'static str {
    TOOL_KINDS
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map_or("malware family", |(_, kind)| kind)
}

/// `a` or `an`.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn actor_aliases(rng: &mut SplitMix64) -> Vec<String> {
    let mut aliases: Vec<String> = Vec::new();
    for _ in 0..rng.random_range(0..=6) {
        let alias = match rng.random_range(0..6) {
            0 => pick(rng, ELEMENT_ALIASES).to_owned(),
            1 => format!("{} {}", pick(rng, ANIMAL_ADJECTIVES), pick(rng, ANIMALS)),
            2 => format!("APT{}", rng.random_range(1..99)),
            3 => format!("UNC{}", rng.random_range(100..5000)),
            4 => format!(
                "Sector{}{:02}",
                char::from(b'A' + rng.random_range(0..26u8)),
                rng.random_range(1..99)
            ),
            _ => format!("DEV-{:04}", rng.random_range(1..1000)),
        };
        if !aliases.contains(&alias) {
            aliases.push(alias);
        }
    }
    aliases
}

fn tool_aliases(rng: &mut SplitMix64, title: &str) -> Vec<String> {
    let candidates = [
        title.to_lowercase(),
        format!("Win32/{title}"),
        format!("Trojan:Win32/{title}.A"),
        format!("{title} v{}", rng.random_range(2..6)),
    ];
    let n = rng.random_range(0..=3);
    candidates.into_iter().take(n).collect()
}

/// The artifact kinds an indicator can carry, with their share of generated indicators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArtifactKind {
    Hostname,
    Ipv4,
    Ipv6,
    Ipv4Cidr,
    Ipv6Cidr,
    SslCertificate,
    Url,
    Md5,
    Sha1,
    Sha256,
    Email,
    HostCookie,
    HostComponent,
    HostTracker,
    HostSslCertificate,
    PassiveDnsRecord,
}

const WEIGHTS: &[(ArtifactKind, u32)] = &[
    (ArtifactKind::Hostname, 28),
    (ArtifactKind::Ipv4, 14),
    (ArtifactKind::Ipv6, 5),
    (ArtifactKind::Ipv4Cidr, 2),
    (ArtifactKind::Ipv6Cidr, 1),
    (ArtifactKind::SslCertificate, 4),
    (ArtifactKind::Url, 16),
    (ArtifactKind::Md5, 5),
    (ArtifactKind::Sha1, 5),
    (ArtifactKind::Sha256, 10),
    (ArtifactKind::Email, 4),
    (ArtifactKind::HostCookie, 2),
    (ArtifactKind::HostComponent, 2),
    (ArtifactKind::HostTracker, 1),
    (ArtifactKind::HostSslCertificate, 1),
    (ArtifactKind::PassiveDnsRecord, 1),
];

impl ArtifactKind {
    pub fn draw(rng: &mut SplitMix64) -> ArtifactKind {
        let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut x = rng.random_range(0..total);
        for (kind, weight) in WEIGHTS {
            if x < *weight {
                return *kind;
            }
            x -= weight;
        }
        ArtifactKind::Hostname
    }

    /// Hostnames and plain addresses get `hosts/` and `reputation/` entries.
    pub fn is_host(self) -> bool {
        matches!(
            self,
            ArtifactKind::Hostname | ArtifactKind::Ipv4 | ArtifactKind::Ipv6
        )
    }
}

/// An artifact value: the `id` of a stub, or `value` of an unclassifiedArtifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub kind: ArtifactKind,
    pub value: String,
}

impl Artifact {
    pub fn new(rng: &mut SplitMix64, values: &mut Values, kind: ArtifactKind, n: u64) -> Artifact {
        let value = match kind {
            ArtifactKind::Hostname => values.hostname(rng, n),
            ArtifactKind::Ipv4 => values.next_ipv4(),
            ArtifactKind::Ipv6 => values.ipv6(n),
            ArtifactKind::Ipv4Cidr => values.ipv4_cidr(rng),
            ArtifactKind::Ipv6Cidr => values.ipv6_cidr(rng),
            ArtifactKind::SslCertificate => {
                let h = hex(rng, 40);
                if rng.random_bool(0.2) {
                    h.to_uppercase()
                } else {
                    h
                }
            }
            ArtifactKind::Url => values.url(rng, n),
            ArtifactKind::Md5 => hex(rng, 32),
            ArtifactKind::Sha1 => hex(rng, 40),
            ArtifactKind::Sha256 => hex(rng, 64),
            ArtifactKind::Email => values.email(rng, n),
            // The skip types carry only an opaque base64 composite id (§6.10).
            ArtifactKind::HostCookie => {
                let host = values.hostname(rng, n);
                base64_padded(&format!("{host}$${}$${host}", pick(rng, COOKIES)))
            }
            ArtifactKind::HostComponent => {
                let (category, name) = COMPONENTS[rng.random_range(0..COMPONENTS.len())];
                let version = format!("{}.{}", rng.random_range(1..12), rng.random_range(0..30));
                let host = values.hostname(rng, n);
                base64_padded(&format!("{name}$${version}$${category}$${host}"))
            }
            ArtifactKind::HostTracker => {
                let host = values.hostname(rng, n);
                base64_padded(&format!(
                    "{}$${}$${host}",
                    pick(rng, TRACKERS),
                    hex(rng, 12)
                ))
            }
            ArtifactKind::HostSslCertificate => {
                let host = values.hostname(rng, n);
                base64_padded(&format!("{}$${host}", hex(rng, 40)))
            }
            ArtifactKind::PassiveDnsRecord => {
                let host = values.hostname(rng, n);
                base64_padded(&format!("{host}$${}$$false", values.next_ipv4()))
            }
        };
        Artifact { kind, value }
    }

    /// The stub as Graph inlines it in an indicator (§4.4).
    pub fn stub(&self) -> String {
        let typed = |t: &str| format!("#{NS}.{t}");
        let stub = |t: &str| {
            ObjectWriter::new()
                .str("@odata.type", &typed(t))
                .str("id", &self.value)
                .finish()
        };
        let unclassified = |kind: &str| {
            ObjectWriter::new()
                .str("@odata.type", &typed("unclassifiedArtifact"))
                .str("kind", kind)
                .str("value", &self.value)
                .finish()
        };
        match self.kind {
            ArtifactKind::Hostname => stub("hostname"),
            ArtifactKind::Ipv4
            | ArtifactKind::Ipv6
            | ArtifactKind::Ipv4Cidr
            | ArtifactKind::Ipv6Cidr => stub("ipAddress"),
            ArtifactKind::SslCertificate => stub("sslCertificate"),
            ArtifactKind::Url => unclassified("url"),
            ArtifactKind::Md5 => unclassified("md5"),
            ArtifactKind::Sha1 => unclassified("sha1"),
            ArtifactKind::Sha256 => unclassified("sha256"),
            ArtifactKind::Email => unclassified("email"),
            ArtifactKind::HostCookie => stub("hostCookie"),
            ArtifactKind::HostComponent => stub("hostComponent"),
            ArtifactKind::HostTracker => stub("hostTracker"),
            ArtifactKind::HostSslCertificate => stub("hostSslCertificate"),
            ArtifactKind::PassiveDnsRecord => stub("passiveDnsRecord"),
        }
    }
}

/// One intelligenceProfileIndicator. `n` is the indicator's global number (unique ids).
pub fn indicator(rng: &mut SplitMix64, artifact: &Artifact, n: u64) -> String {
    let id = if rng.random_bool(0.05) {
        base64_padded(&format!(
            "{}$${}$${n:x}",
            artifact_label(artifact.kind),
            artifact.value
        ))
    } else {
        guid(rng)
    };
    // Both spellings of indicatorSource (§7.3), the v1.0 one far more often.
    let source = match rng.random_range(0..100) {
        0..70 => "microsoft",
        70..85 => "osint",
        85..93 => "public",
        93..98 => "microsoftDefenderThreatIntelligence",
        _ => "openSourceIntelligence",
    };
    let first = rng.random_range(SEEN_FROM..SEEN_TO);
    let first_seen = timestamp(rng, first);
    let last_seen = (!rng.random_bool(0.45)).then(|| {
        let last = (first + rng.random_range(0..63_072_000)).min(SEEN_CAP);
        timestamp(rng, last)
    });
    ObjectWriter::new()
        .str(
            "@odata.type",
            &format!("#{NS}.intelligenceProfileIndicator"),
        )
        .str("id", &id)
        .str("source", source)
        .str("firstSeenDateTime", &first_seen)
        .opt_str("lastSeenDateTime", last_seen.as_deref())
        .raw("artifact", &artifact.stub())
        .finish()
}

fn artifact_label(kind: ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Hostname => "hostname",
        ArtifactKind::Ipv4
        | ArtifactKind::Ipv6
        | ArtifactKind::Ipv4Cidr
        | ArtifactKind::Ipv6Cidr => "ipAddress",
        ArtifactKind::SslCertificate => "sslCertificate",
        ArtifactKind::Url => "url",
        ArtifactKind::Md5 => "md5",
        ArtifactKind::Sha1 => "sha1",
        ArtifactKind::Sha256 => "sha256",
        ArtifactKind::Email => "email",
        ArtifactKind::HostCookie => "hostCookie",
        ArtifactKind::HostComponent => "hostComponent",
        ArtifactKind::HostTracker => "hostTracker",
        ArtifactKind::HostSslCertificate => "hostSslCertificate",
        ArtifactKind::PassiveDnsRecord => "passiveDnsRecord",
    }
}

/// `hosts/<id>.json`: a `hostname` or `ipAddress` entity (§6.5).
pub fn host(rng: &mut SplitMix64, artifact: &Artifact) -> String {
    let first = rng.random_range(SEEN_FROM..SEEN_TO);
    let first_seen = timestamp(rng, first);
    let last_seen = rng.random_bool(0.7).then(|| {
        let last = (first + rng.random_range(0..63_072_000)).min(SEEN_CAP);
        timestamp(rng, last)
    });
    let common = |t: &str| {
        ObjectWriter::new()
            .str("@odata.type", &format!("#{NS}.{t}"))
            .str("id", &artifact.value)
            .str("firstSeenDateTime", &first_seen)
            .opt_str("lastSeenDateTime", last_seen.as_deref())
    };
    if artifact.kind == ArtifactKind::Hostname {
        let registrant = rng
            .random_bool(0.5)
            .then(|| format!("{} Holdings", pick(rng, WORDS).to_uppercase()));
        common("hostname")
            .str("registrar", pick(rng, REGISTRARS))
            .opt_str("registrant", registrant.as_deref())
            .finish()
    } else {
        let asn = rng.random_range(64_496..=64_511);
        let provider = pick(rng, HOSTING_PROVIDERS);
        let autonomous = ObjectWriter::new()
            .str("name", &provider.to_uppercase().replace(' ', "-"))
            .num("number", asn)
            .str("organization", provider)
            .str("value", &format!("AS{asn}"))
            .finish();
        let netblock = match artifact.value.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) => {
                let o = v4.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            Ok(std::net::IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!(
                    "{}/48",
                    std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0)
                )
            }
            Err(_) => artifact.value.clone(),
        };
        common("ipAddress")
            .raw("autonomousSystem", &autonomous)
            .str(
                "countryOrRegion",
                COUNTRIES[rng.random_range(0..COUNTRIES.len())].1,
            )
            .str("hostingProvider", provider)
            .str("netblock", &netblock)
            .finish()
    }
}

/// `reputation/<id>.json`: a `hostReputation` (§6.6).
pub fn reputation(rng: &mut SplitMix64, artifact: &Artifact) -> String {
    let (classification, score) = match rng.random_range(0..10) {
        0..6 => ("malicious", rng.random_range(75..=100)),
        6..8 => ("suspicious", rng.random_range(40..75)),
        8 => ("neutral", rng.random_range(0..40)),
        _ => ("unknown", 0),
    };
    let mut kinds = [0, 1, 2];
    shuffle(rng, &mut kinds);
    let mut rules = Vec::new();
    for &kind in &kinds[..rng.random_range(1..=3)] {
        let rule = match kind {
            0 => ObjectWriter::new()
                .str("name", "Microsoft Defender Threat Intelligence Intel Article")
                .str(
                    "description",
                    &format!("Activity snapshot: {} infrastructure", pick(rng, WORDS)),
                )
                .str("severity", "high")
                .str(
                    "relatedDetailsUrl",
                    &format!("https://ti.defender.microsoft.com/article/{}", hex(rng, 8)),
                ),
            1 => ObjectWriter::new()
                .str("name", "Registrar")
                .str(
                    "description",
                    "Domains registered using this registrar are frequently associated with suspicious behavior",
                )
                .str("severity", "medium")
                .raw("relatedDetailsUrl", "null"),
            _ => {
                let address = if artifact.kind == ArtifactKind::Hostname {
                    format!("192.0.2.{}", rng.random_range(1..255))
                } else {
                    artifact.value.clone()
                };
                ObjectWriter::new()
                    .str("name", "Resolving IP Address")
                    .str("description", &address)
                    .str("severity", "low")
                    .str(
                        "relatedDetailsUrl",
                        &format!("https://ti.defender.microsoft.com/search?query={address}"),
                    )
            }
        };
        rules.push(rule.finish());
    }
    ObjectWriter::new()
        .str("@odata.type", &format!("#{NS}.hostReputation"))
        .str("id", &guid(rng))
        .str("classification", classification)
        .num("score", score)
        .raw("rules", &format!("[{}]", rules.join(",")))
        .finish()
}

/// `@odata.context` of a profile's indicator file, as a JSON string literal.
pub fn indicators_context(profile_id: &str) -> String {
    string(&format!(
        "https://graph.microsoft.com/v1.0/$metadata#security/threatIntelligence/intelProfiles('{}')/indicators",
        profile_id.replace('\'', "''")
    ))
}
