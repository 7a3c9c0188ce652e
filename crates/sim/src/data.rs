//! The data the simulator serves, held in memory: profiles in file order, each profile's
//! indicators in file order, hosts and reputations by host id.
//!
//! Records are kept as the exact JSON text of the dump (`Box<RawValue>`), so the client sees the
//! dump's records byte for byte, malformed-but-JSON ones included. Only the few facts the
//! server needs for routing, `$filter` and `$orderby` are extracted at load time.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use ctiport_model::pct::{pct, unpct};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::json::{object_members, wrapped_entity};

/// One served record and its id (if it has a usable one).
#[derive(Debug)]
pub struct Entry {
    pub raw: Box<RawValue>,
    pub id: Option<Box<str>>,
}

#[derive(Debug)]
pub struct Profile {
    pub entry: Entry,
    pub kind: Option<Box<str>>,
    pub title: Option<Box<str>>,
}

#[derive(Debug)]
pub struct Indicator {
    pub entry: Entry,
    pub first_seen: Option<Box<str>>,
}

#[derive(Debug, Default)]
pub struct Store {
    profiles: Vec<Profile>,
    /// First profile with each id (a dump may repeat an id; the listing keeps both).
    profile_by_id: HashMap<Box<str>, usize>,
    indicator_lists: Vec<Vec<Indicator>>,
    list_by_profile_id: HashMap<Box<str>, usize>,
    /// First occurrence of each indicator id: (list, position).
    indicator_by_id: HashMap<Box<str>, (usize, usize)>,
    hosts: HashMap<String, Box<RawValue>>,
    reputation: HashMap<String, Box<RawValue>>,
}

impl Store {
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.profile_by_id.get(id).map(|&i| &self.profiles[i])
    }

    /// `None` if no profile has this id; an empty slice if it has no indicators.
    pub fn indicators_of(&self, profile_id: &str) -> Option<&[Indicator]> {
        self.profile_by_id.get(profile_id)?;
        Some(
            self.list_by_profile_id
                .get(profile_id)
                .map_or(&[][..], |&l| &self.indicator_lists[l][..]),
        )
    }

    pub fn indicator(&self, id: &str) -> Option<&Indicator> {
        let &(list, pos) = self.indicator_by_id.get(id)?;
        self.indicator_lists.get(list)?.get(pos)
    }

    pub fn host(&self, id: &str) -> Option<&RawValue> {
        self.hosts.get(id).map(AsRef::as_ref)
    }

    pub fn reputation(&self, id: &str) -> Option<&RawValue> {
        self.reputation.get(id).map(AsRef::as_ref)
    }

    pub fn indicator_count(&self) -> usize {
        self.indicator_lists.iter().map(Vec::len).sum()
    }

    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    pub fn reputation_count(&self) -> usize {
        self.reputation.len()
    }

    pub fn add_profile(&mut self, raw: Box<RawValue>) {
        let facts = Facts::of(&raw);
        let index = self.profiles.len();
        if let Some(id) = &facts.id {
            self.profile_by_id.entry(id.clone()).or_insert(index);
        }
        self.profiles.push(Profile {
            entry: Entry { raw, id: facts.id },
            kind: facts.kind,
            title: facts.title,
        });
    }

    pub fn add_indicator(&mut self, profile_id: &str, raw: Box<RawValue>) {
        let list = match self.list_by_profile_id.get(profile_id) {
            Some(&list) => list,
            None => {
                self.indicator_lists.push(Vec::new());
                let list = self.indicator_lists.len() - 1;
                self.list_by_profile_id.insert(profile_id.into(), list);
                list
            }
        };
        let facts = Facts::of(&raw);
        let items = &mut self.indicator_lists[list];
        if let Some(id) = &facts.id {
            self.indicator_by_id
                .entry(id.clone())
                .or_insert((list, items.len()));
        }
        items.push(Indicator {
            entry: Entry { raw, id: facts.id },
            first_seen: facts.first_seen,
        });
    }

    pub fn add_host(&mut self, host_id: &str, raw: Box<RawValue>) {
        self.hosts.insert(host_id.to_owned(), raw);
    }

    pub fn add_reputation(&mut self, host_id: &str, raw: Box<RawValue>) {
        self.reputation.insert(host_id.to_owned(), raw);
    }
}

/// What the server needs to know about a record, read leniently: a wrapped entity
/// `{"value": {...}}` is looked into (as ctiport's own reader does), a numeric id counts.
#[derive(Debug, Default)]
struct Facts {
    id: Option<Box<str>>,
    kind: Option<Box<str>>,
    title: Option<Box<str>>,
    first_seen: Option<Box<str>>,
}

impl Facts {
    fn of(raw: &RawValue) -> Facts {
        let Some(outer) = object_members(raw) else {
            return Facts::default();
        };
        let inner = wrapped_entity(&outer).and_then(object_members);
        let members = inner.as_ref().unwrap_or(&outer);
        let string = |name: &str| -> Option<Box<str>> {
            let (_, value) = members.iter().find(|(k, _)| k == name)?;
            serde_json::from_str::<String>(value.get())
                .ok()
                .map(Into::into)
        };
        let id = members
            .iter()
            .find(|(k, _)| k == "id")
            .and_then(|(_, value)| {
                let text = value.get();
                if text.starts_with('"') {
                    serde_json::from_str::<String>(text).ok().map(Into::into)
                } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                    Some(text.into())
                } else {
                    None
                }
            });
        Facts {
            id,
            kind: string("kind"),
            title: string("title"),
            first_seen: string("firstSeenDateTime"),
        }
    }
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} profiles, {} indicators, {} hosts, {} reputations",
            self.profiles.len(),
            self.indicator_count(),
            self.host_count(),
            self.reputation_count()
        )
    }
}

/// Loads a dump directory (layout in docs/contracts.md). Unreadable records are skipped with a
/// warning; only a missing profile file is fatal.
pub fn load_dump(root: &Path) -> anyhow::Result<Store> {
    let profiles_file = ["intelProfiles.json", "intelProfiles.ndjson"]
        .into_iter()
        .map(|name| root.join(name))
        .find(|path| path.is_file());
    let Some(profiles_file) = profiles_file else {
        bail!(
            "{} has neither intelProfiles.json nor intelProfiles.ndjson",
            root.display()
        );
    };
    let mut store = Store::default();
    for raw in read_records(&profiles_file)? {
        store.add_profile(raw);
    }

    // Like ctiport's dump reader: `.json` then `.ndjson`, both if both exist.
    let mut loaded = HashSet::new();
    let ids: Vec<Box<str>> = store
        .profiles
        .iter()
        .filter_map(|p| p.entry.id.clone())
        .collect();
    for id in ids {
        let stem = pct(&id);
        if !loaded.insert(stem.clone()) {
            continue;
        }
        for extension in ["json", "ndjson"] {
            let path = root.join("indicators").join(format!("{stem}.{extension}"));
            if path.is_file() {
                for raw in read_records(&path)? {
                    store.add_indicator(&id, raw);
                }
            }
        }
    }
    warn_orphans(&root.join("indicators"), &loaded);

    for (dir, is_host) in [("hosts", true), ("reputation", false)] {
        for (host, raw) in read_entities(&root.join(dir))? {
            if is_host {
                store.add_host(&host, raw);
            } else {
                store.add_reputation(&host, raw);
            }
        }
    }
    Ok(store)
}

fn warn_orphans(dir: &Path, loaded: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut orphans: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            let stem = name
                .strip_suffix(".json")
                .or_else(|| name.strip_suffix(".ndjson"));
            stem.is_some_and(|s| !loaded.contains(s))
        })
        .collect();
    orphans.sort();
    for name in orphans {
        tracing::warn!(file = %dir.join(&name).display(), "indicator file matches no profile; not served");
    }
}

/// `<dir>/<pct(id)>.json` files, one entity each.
fn read_entities(dir: &Path) -> anyhow::Result<Vec<(String, Box<RawValue>)>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let Some(id) = name.strip_suffix(".json").and_then(unpct) else {
            tracing::warn!(file = %path.display(), "file name is not a pct() encoded id; skipped");
            continue;
        };
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        match serde_json::from_slice::<Box<RawValue>>(&bytes) {
            Ok(raw) => out.push((id, raw)),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "not valid JSON; skipped")
            }
        }
    }
    Ok(out)
}

/// Every record of a `.json` collection or `.ndjson` file that parses as JSON, in file order.
fn read_records(path: &Path) -> anyhow::Result<Vec<Box<RawValue>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let is_ndjson = path.extension().is_some_and(|e| e == "ndjson");
    let mut out = Vec::new();
    if is_ndjson {
        read_ndjson(&bytes, &mut out, &mut |line, error| {
            tracing::warn!(file = %path.display(), line, %error, "skipping a line that is not valid JSON");
        });
    } else if let Err(error) = read_collection(&bytes, &mut out) {
        tracing::warn!(
            file = %path.display(),
            %error,
            kept = out.len(),
            "collection file is not valid JSON to its end; serving the records before the error"
        );
    }
    Ok(out)
}

/// One JSON value per line; blank lines are ignored, CRLF is accepted.
pub fn read_ndjson(
    bytes: &[u8],
    out: &mut Vec<Box<RawValue>>,
    on_error: &mut dyn FnMut(usize, serde_json::Error),
) {
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Box<RawValue>>(line) {
            Ok(raw) => out.push(raw),
            Err(error) => on_error(index + 1, error),
        }
    }
}

/// The elements of `{"value": [...]}` (also a bare array, or a lone object under `value`). On a
/// JSON error the elements before it stay in `out`.
pub fn read_collection(
    bytes: &[u8],
    out: &mut Vec<Box<RawValue>>,
) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let streamed = CollectionSeed { out: &mut *out }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match streamed {
        Ok(()) => Ok(()),
        Err(error) if out.is_empty() => {
            #[derive(serde::Deserialize)]
            struct LoneEntity {
                value: Box<RawValue>,
            }
            match serde_json::from_slice::<LoneEntity>(bytes) {
                Ok(lone) if lone.value.get().starts_with('{') => {
                    out.push(lone.value);
                    Ok(())
                }
                _ => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

struct CollectionSeed<'a> {
    out: &'a mut Vec<Box<RawValue>>,
}

impl<'de> DeserializeSeed<'de> for CollectionSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a Graph collection {"value": [...]}"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut saw_value = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "value" && !saw_value {
                saw_value = true;
                map.next_value_seed(ItemsSeed {
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if saw_value {
            Ok(())
        } else {
            Err(serde::de::Error::custom("no \"value\" member"))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        ItemsSeed { out: self.out }.visit_seq(seq)
    }
}

struct ItemsSeed<'a> {
    out: &'a mut Vec<Box<RawValue>>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Box<RawValue>>()? {
            self.out.push(item);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    fn raws(out: &[Box<RawValue>]) -> Vec<&str> {
        out.iter().map(|r| r.get()).collect()
    }

    #[test]
    fn collection_keeps_records_verbatim_and_survives_truncation() {
        let mut out = Vec::new();
        read_collection(
            br#"{"@odata.count":2,"value":[{"b":1, "a":2},[3]]}"#,
            &mut out,
        )
        .expect("valid");
        assert_eq!(raws(&out), [r#"{"b":1, "a":2}"#, "[3]"]);

        let mut out = Vec::new();
        let err = read_collection(br#"{"value":[{"id":"1"},{"id":"2"},{"id""#, &mut out);
        assert!(err.is_err());
        assert_eq!(raws(&out), [r#"{"id":"1"}"#, r#"{"id":"2"}"#]);

        let mut out = Vec::new();
        read_collection(br#"{"value":{"id":"lone"}}"#, &mut out).expect("lone entity");
        assert_eq!(raws(&out), [r#"{"id":"lone"}"#]);
    }

    #[test]
    fn ndjson_skips_bad_lines() {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        read_ndjson(
            b"{\"id\":1}\r\n\r\n{\"id\":\nnull\n",
            &mut out,
            &mut |line, _| bad.push(line),
        );
        assert_eq!(raws(&out), [r#"{"id":1}"#, "null"]);
        assert_eq!(bad, [3]);
    }

    #[test]
    fn facts_look_into_wrapped_entities() {
        let mut store = Store::default();
        let raw = |s: &str| RawValue::from_string(s.to_owned()).expect("json");
        store.add_profile(raw(r#"{"value":{"id":"w","kind":"tool"}}"#));
        store.add_profile(raw(r#"{"id":17,"kind":"actor","title":"T"}"#));
        store.add_profile(raw(r#"[1,2]"#));
        store.add_indicator(
            "w",
            raw(r#"{"id":"i1","firstSeenDateTime":"2020-01-01T00:00:00Z"}"#),
        );
        assert_eq!(
            store.profile("w").and_then(|p| p.kind.as_deref()),
            Some("tool")
        );
        assert_eq!(
            store.profile("17").and_then(|p| p.title.as_deref()),
            Some("T")
        );
        assert_eq!(store.profiles().len(), 3);
        assert_eq!(store.indicators_of("w").map(<[_]>::len), Some(1));
        assert_eq!(store.indicators_of("17").map(<[_]>::len), Some(0));
        assert!(store.indicators_of("nope").is_none());
        assert!(
            store
                .indicator("i1")
                .is_some_and(|i| i.first_seen.is_some())
        );
    }

    #[test]
    fn loads_the_sample_dumps() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let store = load_dump(&root.join("tests/fixtures/adversarial")).expect("adversarial");
        assert_eq!(store.profiles().len(), 5);
        assert_eq!(store.indicator_count(), 61);
        assert!(
            store
                .indicators_of("profil ünïcode/🦊")
                .is_some_and(|l| l.len() == 15)
        );
        let store = load_dump(&root.join("tests/fixtures/malformed")).expect("malformed");
        assert_eq!(store.profiles().len(), 2);
        let store = load_dump(&root.join("samples/mdti")).expect("samples");
        assert!(store.host("2001:db8:4f::23").is_some());
        assert!(store.reputation("cdn-sync.example.org").is_some());
    }
}
