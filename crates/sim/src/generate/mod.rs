//! Synthetic MDTI dumps: `ctiport-sim generate` writes one to disk, `serve --generate-*` keeps
//! one in memory; both run the same generator through a [`Sink`].
//!
//! The generator streams: it holds the N profiles and one count per profile, never the M
//! indicators, so M in the millions runs in flat memory when the sink writes to disk.

pub mod records;
pub mod values;
pub mod vocab;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ctiport_model::pct::pct;
use rand::Rng;
use serde_json::value::RawValue;

use crate::data::Store;
use crate::rng::SplitMix64;
use records::{Artifact, ArtifactKind, Titles};
use values::Values;

/// How many profiles and indicators, from which seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    pub profiles: u64,
    pub indicators: u64,
    pub seed: u64,
    /// `--even`: every profile gets the same number of indicators (the first ones one more
    /// when it does not divide), instead of the heavy-tailed spread.
    pub even: bool,
    /// `--awkward-ids`: profiles with indicators get the ids in [`AWKWARD_IDS`].
    pub awkward_ids: bool,
}

/// Profile ids that only survive a client that percent-encodes every path segment: the dot
/// segments `.` and `..`, and one with `/`, `+` and `=`. A fourth, `x/../<id>`, names another
/// profile's indicators when sent unencoded (see [`awkward_ids`]).
pub const AWKWARD_IDS: [&str; 3] = [".", "..", "a+b/c=="];

/// How a profile's indicators are stored (a dump may use either format, or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `indicators/<pct(id)>.json`, a `{"value":[...]}` collection.
    Json,
    /// `indicators/<pct(id)>.ndjson`, one record per line.
    Ndjson,
    /// No file: the profile has no indicators.
    NoFile,
}

/// Where generated records go.
pub trait Sink {
    fn profiles(&mut self, records: &[records::ProfileMeta]) -> anyhow::Result<()>;
    fn begin_indicators(&mut self, profile_id: &str, layout: Layout) -> anyhow::Result<()>;
    fn indicator(&mut self, record: String) -> anyhow::Result<()>;
    fn end_indicators(&mut self) -> anyhow::Result<()>;
    fn host(&mut self, host_id: &str, record: String) -> anyhow::Result<()>;
    fn reputation(&mut self, host_id: &str, record: String) -> anyhow::Result<()>;
}

/// The one-line summary printed by `generate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub profiles: u64,
    pub indicators: u64,
    pub files: u64,
}

/// Host names and addresses that get `hosts/` and `reputation/` files.
const ENRICHED_HOSTS: usize = 50;
/// Profiles are held in memory while the indicators stream.
const MAX_PROFILES: u64 = 10_000_000;
/// Share of indicators whose value is drawn from the pool shared between profiles.
const SHARED_SHARE: f64 = 0.02;

/// Runs the generator. Deterministic: same spec, same records, byte for byte.
pub fn generate(spec: Spec, sink: &mut dyn Sink) -> anyhow::Result<Summary> {
    if spec.profiles == 0 && spec.indicators > 0 {
        bail!("indicators need at least one profile to belong to");
    }
    // Profiles (unlike indicators) are held in memory.
    if spec.profiles > MAX_PROFILES {
        bail!("at most {MAX_PROFILES} profiles can be generated");
    }
    let mut root = SplitMix64::new(spec.seed);
    // Independent streams: changing how one part draws does not reshuffle the others.
    let mut profile_rng = root.fork(1);
    let mut count_rng = root.fork(2);
    let mut indicator_rng = root.fork(3);
    let mut host_rng = root.fork(4);
    let mut shared_rng = root.fork(5);
    let mut values = Values::new(spec.seed);

    let mut titles = Titles::new(&mut profile_rng);
    let mut profiles: Vec<records::ProfileMeta> = (0..spec.profiles)
        .map(|i| records::profile(&mut profile_rng, &values, &mut titles, i))
        .collect();
    let counts = if spec.even {
        even_spread(spec.indicators, spec.profiles)
    } else {
        spread(spec.indicators, spec.profiles, &mut count_rng)
    };
    if spec.awkward_ids {
        awkward_ids(&mut profiles, &counts)?;
    }
    sink.profiles(&profiles)?;

    let shared = shared_pool(&mut shared_rng, &mut values, spec.indicators);

    // Counters for unique values start at 0; the shared pool used the top of the range.
    let mut number: u64 = 0;
    let mut enriched: Vec<Artifact> = Vec::new();
    let mut enriched_seen: HashSet<String> = HashSet::new();
    for (i, (profile, &count)) in profiles.iter().zip(&counts).enumerate() {
        let layout = match (count, i % 3) {
            (0, _) => Layout::NoFile,
            (_, 2) => Layout::Ndjson,
            _ => Layout::Json,
        };
        sink.begin_indicators(&profile.id, layout)?;
        for _ in 0..count {
            let use_shared = !shared.is_empty() && indicator_rng.random_bool(SHARED_SHARE);
            let artifact = if use_shared {
                shared[indicator_rng.random_range(0..shared.len())].clone()
            } else {
                let kind = ArtifactKind::draw(&mut indicator_rng);
                Artifact::new(&mut indicator_rng, &mut values, kind, number)
            };
            if artifact.kind.is_host()
                && enriched.len() < ENRICHED_HOSTS
                && enriched_seen.insert(artifact.value.clone())
            {
                enriched.push(artifact.clone());
            }
            sink.indicator(records::indicator(&mut indicator_rng, &artifact, number))?;
            number += 1;
        }
        sink.end_indicators()?;
    }
    for artifact in &enriched {
        sink.host(&artifact.value, records::host(&mut host_rng, artifact))?;
        sink.reputation(
            &artifact.value,
            records::reputation(&mut host_rng, artifact),
        )?;
    }
    Ok(Summary {
        profiles: spec.profiles,
        indicators: spec.indicators,
        files: 0,
    })
}

/// Values that several profiles share (the same host in two actors' lists, and so on).
fn shared_pool(rng: &mut SplitMix64, values: &mut Values, indicators: u64) -> Vec<Artifact> {
    if indicators < 50 {
        return Vec::new();
    }
    let size = (indicators / 100).clamp(4, 1000);
    let kinds = [
        ArtifactKind::Hostname,
        ArtifactKind::Ipv4,
        ArtifactKind::Url,
        ArtifactKind::Sha256,
    ];
    (0..size)
        .map(|j| {
            let kind = kinds[(j % 4) as usize];
            // Counters from the top of the range never meet the per-indicator ones.
            Artifact::new(rng, values, kind, u64::MAX / 2 + j)
        })
        .collect()
}

/// Splits `total` indicators over `n` profiles, unevenly: a heavy-tailed share each, and about
/// one profile in eight (at least one, from three profiles up) with none at all.
pub fn spread(total: u64, n: u64, rng: &mut SplitMix64) -> Vec<u64> {
    let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
    let mut weights: Vec<f64> = (0..n_usize)
        .map(|_| {
            if rng.random_bool(0.12) {
                0.0
            } else {
                // Pareto (alpha ≈ 1.16, the 80/20 shape), capped so one profile cannot take all.
                let u: f64 = rng.random_range(0.001..1.0);
                u.powf(-1.0 / 1.16).min(200.0)
            }
        })
        .collect();
    if n >= 3 && !weights.contains(&0.0) {
        weights[n_usize - 1] = 0.0;
    }
    if total > 0 && n > 0 && weights.iter().all(|w| *w == 0.0) {
        weights[0] = 1.0;
    }
    let sum: f64 = weights.iter().sum();
    if sum == 0.0 {
        return vec![0; n_usize];
    }
    // Largest remainder: exact total, deterministic tie-break by position.
    let shares: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut counts: Vec<u64> = shares.iter().map(|s| s.floor() as u64).collect();
    let assigned: u64 = counts.iter().sum();
    let mut order: Vec<usize> = (0..n_usize).filter(|&i| weights[i] > 0.0).collect();
    order.sort_by(|&a, &b| {
        let fa = shares[a] - shares[a].floor();
        let fb = shares[b] - shares[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let mut left = total.saturating_sub(assigned);
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

/// `total` over `n` profiles as evenly as it goes: the first `total % n` get one more.
pub fn even_spread(total: u64, n: u64) -> Vec<u64> {
    let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
    if n == 0 {
        return Vec::new();
    }
    (0..n_usize)
        .map(|i| total / n + u64::from((i as u64) < total % n))
        .collect()
}

/// Gives the first profiles with indicators the [`AWKWARD_IDS`], and the next one's id behind
/// `x/../`, so that an unencoded path names that next profile's indicators.
fn awkward_ids(profiles: &mut [records::ProfileMeta], counts: &[u64]) -> anyhow::Result<()> {
    let with_indicators: Vec<usize> = (0..profiles.len()).filter(|&i| counts[i] > 0).collect();
    let Some(&target) = with_indicators.get(AWKWARD_IDS.len() + 1) else {
        bail!(
            "--awkward-ids needs at least {} profiles with indicators",
            AWKWARD_IDS.len() + 2
        );
    };
    let behind = format!("x/../{}", profiles[target].id);
    let ids = AWKWARD_IDS
        .iter()
        .map(|id| (*id).to_owned())
        .chain([behind]);
    for (&i, id) in with_indicators.iter().zip(ids) {
        let profile = &mut profiles[i];
        let old = format!("\"id\":{}", crate::json::string(&profile.id));
        let new = format!("\"id\":{}", crate::json::string(&id));
        profile.record = profile.record.replacen(&old, &new, 1);
        profile.id = id;
    }
    Ok(())
}

/// Writes a dump directory in the layout of docs/contracts.md.
#[derive(Debug)]
pub struct DirSink {
    root: PathBuf,
    files: u64,
    current: Option<(BufWriter<File>, Layout, bool)>,
}

impl DirSink {
    /// Creates `root` (and its subdirectories). With `force`, a previous dump's files are
    /// removed first; without it, a non-empty `root` is refused, so stale indicator files from
    /// an earlier run can never mix with the new dump.
    pub fn create(root: &Path, force: bool) -> anyhow::Result<Self> {
        if root.exists() {
            let non_empty = fs::read_dir(root)
                .with_context(|| format!("reading {}", root.display()))?
                .next()
                .is_some();
            if non_empty && !force {
                bail!(
                    "{} is not empty (use --force to replace a previous dump)",
                    root.display()
                );
            }
            for name in ["intelProfiles.json", "intelProfiles.ndjson"] {
                let path = root.join(name);
                if path.exists() {
                    fs::remove_file(&path)
                        .with_context(|| format!("removing {}", path.display()))?;
                }
            }
            for dir in ["indicators", "hosts", "reputation"] {
                let path = root.join(dir);
                if path.exists() {
                    fs::remove_dir_all(&path)
                        .with_context(|| format!("removing {}", path.display()))?;
                }
            }
        }
        for dir in ["indicators", "hosts", "reputation"] {
            fs::create_dir_all(root.join(dir))
                .with_context(|| format!("creating {}", root.join(dir).display()))?;
        }
        Ok(DirSink {
            root: root.to_owned(),
            files: 0,
            current: None,
        })
    }

    pub fn files(&self) -> u64 {
        self.files
    }

    fn create_file(&mut self, path: PathBuf) -> anyhow::Result<BufWriter<File>> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        self.files += 1;
        Ok(BufWriter::with_capacity(1 << 16, file))
    }

    fn write_entity(&mut self, dir: &str, host_id: &str, record: &str) -> anyhow::Result<()> {
        let path = self.root.join(dir).join(format!("{}.json", pct(host_id)));
        let mut out = self.create_file(path)?;
        writeln!(out, "{record}")?;
        out.flush()?;
        Ok(())
    }
}

impl Sink for DirSink {
    fn profiles(&mut self, records: &[records::ProfileMeta]) -> anyhow::Result<()> {
        let mut out = self.create_file(self.root.join("intelProfiles.json"))?;
        write!(
            out,
            "{{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#security/threatIntelligence/intelProfiles\",\"value\":["
        )?;
        for (i, profile) in records.iter().enumerate() {
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            out.write_all(profile.record.as_bytes())?;
        }
        writeln!(out, "\n]}}")?;
        out.flush()?;
        Ok(())
    }

    fn begin_indicators(&mut self, profile_id: &str, layout: Layout) -> anyhow::Result<()> {
        let stem = pct(profile_id);
        let dir = self.root.join("indicators");
        self.current = match layout {
            Layout::NoFile => None,
            Layout::Json => {
                let mut out = self.create_file(dir.join(format!("{stem}.json")))?;
                write!(
                    out,
                    "{{\"@odata.context\":{},\"value\":[",
                    records::indicators_context(profile_id)
                )?;
                Some((out, layout, true))
            }
            Layout::Ndjson => {
                let out = self.create_file(dir.join(format!("{stem}.ndjson")))?;
                Some((out, layout, true))
            }
        };
        Ok(())
    }

    fn indicator(&mut self, record: String) -> anyhow::Result<()> {
        let Some((out, layout, first)) = &mut self.current else {
            bail!("internal: an indicator for a profile without an indicator file");
        };
        match layout {
            Layout::Json => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                out.write_all(record.as_bytes())?;
            }
            _ => {
                out.write_all(record.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
        *first = false;
        Ok(())
    }

    fn end_indicators(&mut self) -> anyhow::Result<()> {
        if let Some((mut out, layout, _)) = self.current.take() {
            if layout == Layout::Json {
                writeln!(out, "\n]}}")?;
            }
            out.flush()?;
        }
        Ok(())
    }

    fn host(&mut self, host_id: &str, record: String) -> anyhow::Result<()> {
        self.write_entity("hosts", host_id, &record)
    }

    fn reputation(&mut self, host_id: &str, record: String) -> anyhow::Result<()> {
        self.write_entity("reputation", host_id, &record)
    }
}

/// Collects the generated dump into a [`Store`] for `serve --generate-*`.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub store: Store,
    current: Option<String>,
}

fn raw(record: String) -> anyhow::Result<Box<RawValue>> {
    RawValue::from_string(record).context("internal: the generator produced invalid JSON")
}

impl Sink for MemorySink {
    fn profiles(&mut self, records: &[records::ProfileMeta]) -> anyhow::Result<()> {
        for profile in records {
            self.store.add_profile(raw(profile.record.clone())?);
        }
        Ok(())
    }

    fn begin_indicators(&mut self, profile_id: &str, _layout: Layout) -> anyhow::Result<()> {
        self.current = Some(profile_id.to_owned());
        Ok(())
    }

    fn indicator(&mut self, record: String) -> anyhow::Result<()> {
        let Some(profile_id) = &self.current else {
            bail!("internal: an indicator outside a profile");
        };
        self.store.add_indicator(profile_id, raw(record)?);
        Ok(())
    }

    fn end_indicators(&mut self) -> anyhow::Result<()> {
        self.current = None;
        Ok(())
    }

    fn host(&mut self, host_id: &str, record: String) -> anyhow::Result<()> {
        self.store.add_host(host_id, raw(record)?);
        Ok(())
    }

    fn reputation(&mut self, host_id: &str, record: String) -> anyhow::Result<()> {
        self.store.add_reputation(host_id, raw(record)?);
        Ok(())
    }
}

/// `ctiport-sim generate`: writes the dump and returns the summary.
pub fn generate_to_dir(spec: Spec, out: &Path, force: bool) -> anyhow::Result<Summary> {
    let mut sink = DirSink::create(out, force)?;
    let summary = generate(spec, &mut sink)?;
    Ok(Summary {
        files: sink.files(),
        ..summary
    })
}

/// `serve --generate-*`: the same dump, in memory.
pub fn generate_store(spec: Spec) -> anyhow::Result<Store> {
    let mut sink = MemorySink::default();
    generate(spec, &mut sink)?;
    Ok(sink.store)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use std::net::IpAddr;

    use serde_json::Value;

    fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).expect("dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(dir)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned();
                    out.insert(rel, fs::read(&path).expect("file"));
                }
            }
        }
        out
    }

    #[test]
    fn spread_is_exact_uneven_and_has_empty_profiles() {
        let mut rng = SplitMix64::new(5);
        let counts = spread(10_000, 40, &mut rng);
        assert_eq!(counts.iter().sum::<u64>(), 10_000);
        assert!(counts.contains(&0));
        let max = counts.iter().max().copied().unwrap_or(0);
        let min_nonzero = counts
            .iter()
            .filter(|c| **c > 0)
            .min()
            .copied()
            .unwrap_or(0);
        assert!(max > 4 * min_nonzero, "uneven: {counts:?}");
        assert_eq!(spread(5, 1, &mut rng), [5]);
        assert_eq!(spread(0, 0, &mut rng), Vec::<u64>::new());
        assert_eq!(spread(7, 2, &mut rng).iter().sum::<u64>(), 7);
    }

    #[test]
    fn even_spread_is_exact_and_flat() {
        assert_eq!(even_spread(40_000, 40), vec![1000; 40]);
        assert_eq!(even_spread(7, 3), [3, 2, 2]);
        assert!(even_spread(5, 0).is_empty());
        let store = generate_store(Spec {
            profiles: 4,
            indicators: 10,
            even: true,
            ..Spec::default()
        })
        .expect("generate");
        let sizes: Vec<usize> = store
            .profiles()
            .iter()
            .filter_map(|p| store.indicators_of(p.entry.id.as_deref()?).map(<[_]>::len))
            .collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
    }

    #[test]
    fn awkward_ids_go_to_profiles_with_indicators() {
        let spec = Spec {
            profiles: 8,
            indicators: 80,
            seed: 4,
            even: true,
            awkward_ids: true,
        };
        let store = generate_store(spec).expect("generate");
        let ids: Vec<&str> = store
            .profiles()
            .iter()
            .filter_map(|p| p.entry.id.as_deref())
            .collect();
        let behind = format!("x/../{}", ids[4]);
        assert_eq!(ids[..4], [".", "..", "a+b/c==", behind.as_str()]);
        for id in &ids[..5] {
            assert_eq!(store.indicators_of(id).map(<[_]>::len), Some(10), "{id}");
        }
        let record: serde_json::Value =
            serde_json::from_str(store.profiles()[1].entry.raw.get()).expect("json");
        assert_eq!(record["id"], "..");
        let dir = tempfile::tempdir().expect("tmp");
        generate_to_dir(spec, dir.path(), false).expect("generate");
        let loaded = crate::data::load_dump(dir.path()).expect("load");
        assert_eq!(loaded.indicators_of("..").map(<[_]>::len), Some(10));
        assert_eq!(loaded.indicators_of(".").map(<[_]>::len), Some(10));
        assert!(
            generate_store(Spec {
                profiles: 3,
                indicators: 30,
                awkward_ids: true,
                ..Spec::default()
            })
            .is_err()
        );
    }

    #[test]
    fn same_seed_same_bytes() {
        let spec = Spec {
            profiles: 12,
            indicators: 600,
            seed: 42,
            ..Spec::default()
        };
        let (a, b, c) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let sa = generate_to_dir(spec, a.path(), false).expect("generate");
        generate_to_dir(spec, b.path(), false).expect("generate");
        generate_to_dir(Spec { seed: 43, ..spec }, c.path(), false).expect("generate");
        assert_eq!(files_of(a.path()), files_of(b.path()));
        assert_ne!(files_of(a.path()), files_of(c.path()));
        assert_eq!(sa.files as usize, files_of(a.path()).len());
        assert_eq!((sa.profiles, sa.indicators), (12, 600));
        // A second run into the same directory needs --force.
        assert!(generate_to_dir(spec, a.path(), false).is_err());
        generate_to_dir(spec, a.path(), true).expect("forced");
        assert_eq!(files_of(a.path()), files_of(b.path()));
    }

    fn hostname_ok(h: &str) -> bool {
        let reserved = [
            ".example",
            ".test",
            ".example.com",
            ".example.net",
            ".example.org",
        ];
        reserved.iter().any(|r| h.ends_with(r))
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    }

    fn is_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
    }

    fn timestamp_ok(t: &str) -> bool {
        let b = t.as_bytes();
        t.len() >= 20
            && t.ends_with('Z')
            && b[4] == b'-'
            && b[10] == b'T'
            && (t.len() == 20 || b[19] == b'.')
            && matches!(t.len(), 20 | 24 | 28)
    }

    fn guid_ok(s: &str) -> bool {
        s.split('-').map(str::len).eq([8, 4, 4, 4, 12])
            && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
    }

    fn check_artifact(a: &Value) -> &'static str {
        let t = a["@odata.type"].as_str().unwrap_or_default();
        let id = a["id"].as_str().unwrap_or_default();
        match t.trim_start_matches("#microsoft.graph.security.") {
            "hostname" => {
                assert!(hostname_ok(id), "hostname {id}");
                "hostname"
            }
            "ipAddress" => {
                let (addr, bits) = match id.split_once('/') {
                    Some((a, b)) => (a, Some(b.parse::<u32>().expect("prefix"))),
                    None => (id, None),
                };
                let ip: IpAddr = addr.parse().expect("ip");
                if let Some(bits) = bits {
                    let zero = match ip {
                        IpAddr::V4(v) => u32::from(v) & (u32::MAX >> bits) == 0,
                        IpAddr::V6(v) => u128::from(v) & (u128::MAX >> bits) == 0,
                    };
                    assert!(zero, "cidr {id}");
                    "cidr"
                } else if ip.is_ipv4() {
                    "ipv4"
                } else {
                    assert_eq!(ip.to_string(), id, "canonical IPv6");
                    "ipv6"
                }
            }
            "sslCertificate" => {
                assert!(is_hex(id, 40), "cert {id}");
                "sslCertificate"
            }
            "unclassifiedArtifact" => {
                let v = a["value"].as_str().unwrap_or_default();
                match a["kind"].as_str().unwrap_or_default() {
                    "url" => {
                        let rest = v
                            .strip_prefix("https://")
                            .or_else(|| v.strip_prefix("http://"))
                            .expect("scheme");
                        let host = rest.split(['/', ':']).next().unwrap_or_default();
                        assert!(
                            hostname_ok(host) || host.parse::<IpAddr>().is_ok(),
                            "url host {v}"
                        );
                        assert!(
                            v.bytes().all(|b| b.is_ascii_alphanumeric()
                                || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)),
                            "url {v}"
                        );
                        "url"
                    }
                    "md5" => {
                        assert!(is_hex(v, 32));
                        "md5"
                    }
                    "sha1" => {
                        assert!(is_hex(v, 40));
                        "sha1"
                    }
                    "sha256" => {
                        assert!(is_hex(v, 64));
                        "sha256"
                    }
                    "email" => {
                        let (local, host) = v.split_once('@').expect("@");
                        assert!(
                            !local.is_empty()
                                && local
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'.'),
                            "{v}"
                        );
                        assert!(hostname_ok(host), "{v}");
                        "email"
                    }
                    other => panic!("unexpected kind {other}"),
                }
            }
            "hostCookie" | "hostComponent" | "hostTracker" | "hostSslCertificate"
            | "passiveDnsRecord" => {
                assert!(id.ends_with('='), "composite base64 id {id}");
                "skip"
            }
            other => panic!("unexpected artifact type {other}"),
        }
    }

    #[test]
    fn every_generated_record_is_valid() {
        let dir = tempfile::tempdir().expect("tmp");
        let spec = Spec {
            profiles: 40,
            indicators: 6000,
            seed: 7,
            ..Spec::default()
        };
        let summary = generate_to_dir(spec, dir.path(), false).expect("generate");

        let store = crate::data::load_dump(dir.path()).expect("the generated dump loads");
        assert_eq!(store.profiles().len(), 40);
        assert_eq!(store.indicator_count(), 6000);
        assert!(store.host_count() > 0 && store.host_count() <= 50);
        assert_eq!(store.host_count(), store.reputation_count());

        let mut kinds: HashMap<&str, usize> = HashMap::new();
        let mut sources: HashMap<String, usize> = HashMap::new();
        let mut profiles_of_value: HashMap<String, HashSet<String>> = HashMap::new();
        let (mut null_last, mut empty_profiles, mut b64_profiles) = (0, 0, 0);
        let mut precisions = HashSet::new();
        let mut indicator_ids = HashSet::new();
        for p in store.profiles() {
            let v: Value = serde_json::from_str(p.entry.raw.get()).expect("profile json");
            let id = v["id"].as_str().expect("profile id").to_owned();
            assert!(
                is_hex(&id, 64)
                    || id.ends_with("==")
                    || id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{id}"
            );
            b64_profiles += usize::from(id.contains('/') && id.contains('+'));
            assert!(matches!(v["kind"].as_str(), Some("actor" | "tool")));
            assert!(!v["title"].as_str().unwrap_or_default().is_empty());
            for c in v["countriesOrRegionsOfOrigin"]
                .as_array()
                .expect("countries")
            {
                let code = c["code"].as_str().expect("code");
                assert!(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()));
            }
            assert!(
                v["description"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("\r\n")
            );
            assert_eq!(v["description"]["format"], "markdown");
            if let Some(t) = v["firstActiveDateTime"].as_str() {
                assert!(timestamp_ok(t), "{t}");
            }
            let list = store.indicators_of(&id).expect("listed");
            empty_profiles += usize::from(list.is_empty());
            for ind in list {
                let v: Value = serde_json::from_str(ind.entry.raw.get()).expect("indicator json");
                let iid = v["id"].as_str().expect("indicator id").to_owned();
                assert!(guid_ok(&iid) || iid.ends_with('='), "{iid}");
                assert!(indicator_ids.insert(iid), "indicator ids are unique");
                *sources
                    .entry(v["source"].as_str().expect("source").to_owned())
                    .or_default() += 1;
                let first = v["firstSeenDateTime"].as_str().expect("first seen");
                assert!(timestamp_ok(first), "{first}");
                precisions.insert(first.len());
                match v["lastSeenDateTime"].as_str() {
                    Some(last) => assert!(
                        timestamp_ok(last) && last[..19] >= first[..19],
                        "{first} .. {last}"
                    ),
                    None => null_last += 1,
                }
                *kinds.entry(check_artifact(&v["artifact"])).or_default() += 1;
                let a = &v["artifact"];
                let value = a["value"]
                    .as_str()
                    .or(a["id"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                profiles_of_value
                    .entry(value)
                    .or_default()
                    .insert(id.clone());
            }
        }
        for kind in [
            "hostname",
            "ipv4",
            "ipv6",
            "cidr",
            "sslCertificate",
            "url",
            "md5",
            "sha1",
            "sha256",
            "email",
            "skip",
        ] {
            assert!(
                kinds.get(kind).copied().unwrap_or(0) > 0,
                "{kind} generated: {kinds:?}"
            );
        }
        for source in ["microsoft", "osint", "microsoftDefenderThreatIntelligence"] {
            assert!(sources.contains_key(source), "{sources:?}");
        }
        assert!(null_last > 1000, "many null lastSeen");
        assert_eq!(precisions.len(), 3, "mixed timestamp precision");
        assert!(empty_profiles > 0);
        assert!(b64_profiles > 0);
        let shared = profiles_of_value.values().filter(|p| p.len() > 1).count();
        assert!(shared > 0, "some values are shared between profiles");
        assert_eq!(summary.files as usize, files_of(dir.path()).len());
    }

    #[test]
    fn memory_and_disk_hold_the_same_records() {
        let spec = Spec {
            profiles: 5,
            indicators: 200,
            seed: 3,
            ..Spec::default()
        };
        let dir = tempfile::tempdir().expect("tmp");
        generate_to_dir(spec, dir.path(), false).expect("generate");
        let disk = crate::data::load_dump(dir.path()).expect("load");
        let memory = generate_store(spec).expect("memory");
        let ids = |s: &Store| {
            s.profiles()
                .iter()
                .map(|p| p.entry.raw.get().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&disk), ids(&memory));
        for p in disk.profiles() {
            let id = p.entry.id.as_deref().unwrap_or_default();
            let a: Vec<&str> = disk
                .indicators_of(id)
                .unwrap_or_default()
                .iter()
                .map(|i| i.entry.raw.get())
                .collect();
            let b: Vec<&str> = memory
                .indicators_of(id)
                .unwrap_or_default()
                .iter()
                .map(|i| i.entry.raw.get())
                .collect();
            assert_eq!(a, b);
        }
        assert!(
            generate_store(Spec {
                profiles: 0,
                indicators: 1,
                ..Spec::default()
            })
            .is_err()
        );
    }
}
