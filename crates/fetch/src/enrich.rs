//! `--enrich hosts,reputation`: for hostname and IP indicators, what MDTI knows about the host
//! (`hosts/{id}`) and its reputation (`hosts/{id}/reputation`). One lookup per unique host per
//! run, within a budget (`--enrich-max`), from the live API or from a dump's `hosts/` and
//! `reputation/` folders, so that a dump replays a live run's enrichment exactly.
//!
//! This module holds what both share (the options, the gate, the budget) and the dump's lookups;
//! the live lookups are `graph::enricher`'s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ctiport_model::graph::{Artifact, ProfileIndicator, host_key, odata_type_name};
use ctiport_model::host::{HostFacts, Reputation};
use ctiport_model::pct::pct;
use ctiport_model::record::SourceRecord;
use serde_json::Value;

/// What to look up, and for how many hosts at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnrichOptions {
    pub hosts: bool,
    pub reputation: bool,
    pub max_hosts: usize,
}

impl EnrichOptions {
    pub fn any(&self) -> bool {
        self.hosts || self.reputation
    }
}

/// Which indicators are worth a lookup: the export filters that do not need enrichment
/// (`--source`, `--artifact-type`, `--seen-since`). A host is looked up, and charged to the
/// budget, only for an indicator the gate wants.
#[derive(Clone)]
pub struct EnrichGate(Arc<dyn Fn(&ProfileIndicator) -> bool + Send + Sync>);

impl EnrichGate {
    pub fn new(wants: impl Fn(&ProfileIndicator) -> bool + Send + Sync + 'static) -> Self {
        EnrichGate(Arc::new(wants))
    }

    pub fn wants(&self, indicator: &ProfileIndicator) -> bool {
        (self.0)(indicator)
    }
}

impl std::fmt::Debug for EnrichGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnrichGate(..)")
    }
}

fn gate_wants(gate: &Option<EnrichGate>, indicator: &ProfileIndicator) -> bool {
    gate.as_ref().is_none_or(|gate| gate.wants(indicator))
}

/// The host key of an indicator record that should be enriched, and the place its facts go.
pub(crate) fn host_slot<'a>(
    record: &'a mut SourceRecord,
    gate: &Option<EnrichGate>,
) -> Option<(String, &'a mut Option<Arc<HostFacts>>)> {
    let SourceRecord::Indicator {
        indicator, host, ..
    } = record
    else {
        return None;
    };
    let key = indicator.artifact.as_ref().and_then(Artifact::host_key)?;
    gate_wants(gate, indicator).then_some((key, host))
}

/// The host key of a raw Graph indicator, before it is parsed.
pub fn raw_host_key(indicator: &Value) -> Option<String> {
    let artifact = indicator.get("artifact")?;
    let type_name = odata_type_name(artifact.get("@odata.type")?.as_str()?);
    host_key(&type_name, artifact.get("id")?.as_str()?)
}

/// Counts unique hosts against the budget and says once when it runs out.
pub(crate) struct Budget {
    used: AtomicUsize,
    pub(crate) max: usize,
    warned: AtomicBool,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            max,
            warned: AtomicBool::new(false),
        }
    }

    pub(crate) fn take(&self) -> bool {
        if self.used.fetch_add(1, Ordering::Relaxed) < self.max {
            return true;
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max = self.max,
                "enrichment budget reached (--enrich-max {}); further hosts are not enriched",
                self.max
            );
        }
        false
    }
}

/// The facts of `host` with its reputation, when there is anything to say.
pub(crate) fn combine(
    host: &str,
    facts: Option<HostFacts>,
    reputation: Option<Reputation>,
) -> Option<Arc<HostFacts>> {
    let mut facts = facts.unwrap_or_else(|| HostFacts {
        host: host.to_owned(),
        ..HostFacts::default()
    });
    facts.reputation = reputation;
    (!facts.is_empty()).then(|| Arc::new(facts))
}

/// Enrichment from a dump's `hosts/<pct(host)>.json` and `reputation/<pct(host)>.json`.
pub struct DumpEnricher {
    root: PathBuf,
    options: EnrichOptions,
    gate: Option<EnrichGate>,
    budget: Budget,
    cache: Mutex<HashMap<String, Option<Arc<HostFacts>>>>,
}

impl DumpEnricher {
    pub fn new(root: &Path, options: EnrichOptions) -> Self {
        DumpEnricher {
            root: root.to_owned(),
            options,
            gate: None,
            budget: Budget::new(options.max_hosts),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Looks up only the hosts of indicators `gate` wants.
    pub fn gated(mut self, gate: Option<EnrichGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Attaches host facts to an indicator record whose artifact is a host.
    pub fn enrich(&self, record: &mut SourceRecord) {
        let Some((key, host)) = host_slot(record, &self.gate) else {
            return;
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = cache.get(&key) {
            *host = known.clone();
            return;
        }
        let facts = if self.budget.take() {
            self.read(&key)
        } else {
            None
        };
        cache.insert(key, facts.clone());
        *host = facts;
    }

    fn read(&self, key: &str) -> Option<Arc<HostFacts>> {
        let load = |folder: &str| -> Option<Value> {
            let path = self.root.join(folder).join(format!("{}.json", pct(key)));
            // Looked at before it is opened: a FIFO would block the run.
            match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_file() => {}
                Ok(_) => {
                    tracing::warn!(file = %path.display(), "not a regular file; the host is exported without it");
                    return None;
                }
                Err(_) => return None,
            }
            let text = std::fs::read_to_string(&path).ok()?;
            // A UTF-8 byte order mark is accepted, as in every dump file.
            serde_json::from_str(text.strip_prefix('\u{feff}').unwrap_or(&text))
                .map_err(
                    |e| tracing::warn!(file = %path.display(), "unreadable enrichment file: {e}"),
                )
                .ok()
        };
        let facts = if self.options.hosts {
            load("hosts").and_then(|v| HostFacts::from_host_json(key, &v))
        } else {
            None
        };
        let reputation = if self.options.reputation {
            load("reputation").and_then(|v| Reputation::from_json(&v))
        } else {
            None
        };
        combine(key, facts, reputation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctiport_model::graph::ProfileIndicator;
    use serde_json::json;

    #[test]
    fn the_host_key_of_a_raw_indicator_is_its_artifact_s() {
        assert_eq!(
            raw_host_key(
                &json!({"artifact": {"@odata.type": "#microsoft.graph.security.hostName", "id": "A.example"}})
            ),
            Some("a.example".into())
        );
    }

    /// Both lookups, for one host at most.
    fn dump_enricher(root: &Path) -> DumpEnricher {
        let options = EnrichOptions {
            hosts: true,
            reputation: true,
            max_hosts: 1,
        };
        DumpEnricher::new(root, options)
    }

    /// The host facts `enricher` attaches to a hostname indicator of `host`.
    fn host_of(enricher: &DumpEnricher, host: &str) -> Option<Arc<HostFacts>> {
        let mut record = SourceRecord::Indicator {
            profile_id: "p".into(),
            indicator: ProfileIndicator::from_json(json!({"id": "i", "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": host}})).unwrap(),
            host: None,
        };
        enricher.enrich(&mut record);
        match record {
            SourceRecord::Indicator { host, .. } => host,
            _ => None,
        }
    }

    #[cfg(unix)]
    #[test]
    fn dump_enrichment_files_may_start_with_a_bom_and_a_fifo_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
        std::fs::create_dir_all(dir.path().join("reputation")).unwrap();
        std::fs::write(
            dir.path().join("hosts/a.example.json"),
            "\u{feff}{\"id\": \"a.example\", \"registrar\": \"R\"}",
        )
        .unwrap();
        let fifo = dir.path().join("reputation/a.example.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        // Were the FIFO opened, this would block for ever and the test time out.
        let host = host_of(&dump_enricher(dir.path()), "a.example").unwrap();
        assert_eq!(host.registrar.as_deref(), Some("R"));
        assert!(host.reputation.is_none());
    }

    #[test]
    fn dump_enrichment_reads_both_folders_once_and_respects_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hosts")).unwrap();
        std::fs::create_dir_all(dir.path().join("reputation")).unwrap();
        for host in ["a.example", "b.example"] {
            std::fs::write(
                dir.path().join("hosts").join(format!("{host}.json")),
                json!({"id": host, "registrar": "R"}).to_string(),
            )
            .unwrap();
            std::fs::write(
                dir.path().join("reputation").join(format!("{host}.json")),
                json!({"classification": "malicious", "score": 90}).to_string(),
            )
            .unwrap();
        }
        let enricher = DumpEnricher::new(
            dir.path(),
            EnrichOptions {
                hosts: true,
                reputation: true,
                max_hosts: 1,
            },
        );
        let record = |host: &str| {
            SourceRecord::Indicator {
            profile_id: "p".into(),
            indicator: ProfileIndicator::from_json(json!({"id": "i", "artifact": {"@odata.type": "#microsoft.graph.security.hostname", "id": host}})).unwrap(),
            host: None,
        }
        };
        let host_of = |mut r: SourceRecord| {
            enricher.enrich(&mut r);
            match r {
                SourceRecord::Indicator { host, .. } => host,
                _ => None,
            }
        };
        let first = host_of(record("A.example.")).unwrap();
        assert_eq!(
            (
                first.registrar.as_deref(),
                first.reputation.as_ref().map(|r| r.score)
            ),
            (Some("R"), Some(90))
        );
        assert!(
            host_of(record("a.example")).is_some(),
            "cached, not charged to the budget"
        );
        assert!(host_of(record("b.example")).is_none(), "over the budget");
    }
}
