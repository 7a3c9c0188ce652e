//! `--enrich hosts,reputation`: for hostname and IP indicators, what MDTI knows about the host
//! (`hosts/{id}`) and its reputation (`hosts/{id}/reputation`). One lookup per unique host per
//! run, within a budget (`--enrich-max`), from the live API or from a dump's `hosts/` and
//! `reputation/` folders, so that a dump replays a live run's enrichment exactly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ctiport_model::graph::{Artifact, ProfileIndicator, odata_type_name};
use ctiport_model::host::{HostFacts, Reputation};
use ctiport_model::pct::pct;
use ctiport_model::record::SourceRecord;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::graph::GraphError;
use crate::graph::client::GraphClient;
use crate::graph::walk::{Capture, capture_with, entity_path};

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
fn host_slot<'a>(
    record: &'a mut SourceRecord,
    gate: &Option<EnrichGate>,
) -> Option<(String, &'a mut Option<Arc<HostFacts>>)> {
    let SourceRecord::Indicator {
        indicator, host, ..
    } = record
    else {
        return None;
    };
    let key = indicator.artifact.as_ref().and_then(artifact_key)?;
    gate_wants(gate, indicator).then_some((key, host))
}

/// The host an artifact names, normalized so that `EVIL.example.com.` and `evil.example.com`
/// share one lookup; `None` for artifacts that are not a single host (ranges, hashes, …).
pub fn host_key(type_name: &str, id: &str) -> Option<String> {
    let id = id.trim();
    match type_name {
        "hostname" | "ipaddress" | "host" if !id.is_empty() && !id.contains('/') => {
            Some(match id.parse::<IpAddr>() {
                Ok(address) => address.to_string(),
                Err(_) => id.trim_end_matches('.').to_lowercase(),
            })
            .filter(|key| !key.is_empty())
        }
        _ => None,
    }
}

fn artifact_key(artifact: &Artifact) -> Option<String> {
    host_key(&artifact.type_name, artifact.id.as_deref()?)
}

/// The host key of a raw Graph indicator, before it is parsed.
pub fn raw_host_key(indicator: &Value) -> Option<String> {
    let artifact = indicator.get("artifact")?;
    let type_name = odata_type_name(artifact.get("@odata.type")?.as_str()?);
    host_key(&type_name, artifact.get("id")?.as_str()?)
}

/// Counts unique hosts against the budget and says once when it runs out.
struct Budget {
    used: AtomicUsize,
    max: usize,
    warned: AtomicBool,
}

impl Budget {
    fn new(max: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            max,
            warned: AtomicBool::new(false),
        }
    }

    fn take(&self) -> bool {
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

fn combine(
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

/// Enrichment from the live API: lookups start as soon as a page names a host (concurrently,
/// under the shared throttle) and are awaited, in order, when the record is emitted.
pub struct GraphEnricher {
    client: Arc<GraphClient>,
    base: String,
    options: EnrichOptions,
    capture: Option<Capture>,
    gate: Option<EnrichGate>,
    /// Charged in the order records are emitted (listing order), never in the order pages happen
    /// to arrive: which hosts are enriched must not depend on network timing.
    budget: Budget,
    /// Hosts that got a place in the budget, in emission order.
    admitted: Mutex<HashMap<String, bool>>,
    /// Lookups started, by prefetch (ahead, capped at the budget) or at emission.
    started: AtomicUsize,
    cells: Mutex<HashMap<String, LookupCell>>,
}

/// One host's lookup, shared by whoever asks for the host while it is under way.
type LookupCell = Arc<OnceCell<Option<Arc<HostFacts>>>>;

impl GraphEnricher {
    pub fn new(client: Arc<GraphClient>, base: String, options: EnrichOptions) -> Self {
        GraphEnricher {
            client,
            base,
            options,
            capture: None,
            gate: None,
            budget: Budget::new(options.max_hosts),
            admitted: Mutex::new(HashMap::new()),
            started: AtomicUsize::new(0),
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// The lookup cell of `key`, started if it was not yet.
    fn start(self: &Arc<Self>, key: &str) -> Arc<OnceCell<Option<Arc<HostFacts>>>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = cells.get(key) {
            return cell.clone();
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        let cell = Arc::new(OnceCell::new());
        cells.insert(key.to_owned(), cell.clone());
        let (enricher, key, spawned) = (self.clone(), key.to_owned(), cell.clone());
        tokio::spawn(async move {
            spawned.get_or_init(|| enricher.lookup(&key)).await;
        });
        cell
    }

    /// Looks up only the hosts of indicators `gate` wants.
    pub fn gated(mut self, gate: Option<EnrichGate>) -> Self {
        self.gate = gate;
        self
    }

    pub fn options(&self) -> EnrichOptions {
        self.options
    }

    /// Also writes every host and reputation record fetched to the dump being captured.
    pub fn capturing(mut self, capture: Capture) -> Self {
        self.capture = Some(capture);
        self
    }

    /// Starts the lookup of every new host of a page ahead of its emission, while fewer lookups
    /// than the budget have started (a host prefetched but later found over the budget costs a
    /// request but is not used).
    pub fn prefetch(self: &Arc<Self>, indicators: &[Value]) {
        let wanted = |raw: &&Value| match &self.gate {
            None => true,
            Some(gate) => ProfileIndicator::from_json((*raw).clone())
                .is_ok_and(|indicator| gate.wants(&indicator)),
        };
        for key in indicators.iter().filter(wanted).filter_map(raw_host_key) {
            if self.started.load(Ordering::Relaxed) >= self.budget.max {
                return;
            }
            self.start(&key);
        }
    }

    /// The facts of an indicator's host, when the host is within the budget in emission order.
    pub async fn enrich(self: &Arc<Self>, record: &mut SourceRecord) {
        let Some((key, host)) = host_slot(record, &self.gate) else {
            return;
        };
        let admitted = {
            let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
            match admitted.get(&key) {
                Some(known) => *known,
                None => {
                    let within = self.budget.take();
                    admitted.insert(key.clone(), within);
                    within
                }
            }
        };
        if admitted {
            let cell = self.start(&key);
            *host = cell.get_or_init(|| self.lookup(&key)).await.clone();
        }
    }

    async fn lookup(&self, key: &str) -> Option<Arc<HostFacts>> {
        let url = format!("{}/{}", self.base, entity_path("hosts", key));
        let facts = if self.options.hosts {
            self.fetch(&url, key, "hosts")
                .await
                .and_then(|v| HostFacts::from_host_json(key, &v))
        } else {
            None
        };
        let reputation = if self.options.reputation {
            self.fetch(&format!("{url}/reputation"), key, "reputation")
                .await
                .and_then(|v| Reputation::from_json(&v))
        } else {
            None
        };
        combine(key, facts, reputation)
    }

    async fn fetch(&self, url: &str, key: &str, folder: &'static str) -> Option<Value> {
        match self.client.get_json(url).await {
            Ok(value) => {
                if let Err(error) =
                    capture_with(&self.capture, |dump| dump.host_record(folder, key, &value))
                {
                    tracing::error!("{error}");
                }
                Some(value)
            }
            Err(GraphError::NotFound { .. }) => None,
            Err(error) => {
                tracing::warn!(
                    host = key,
                    "enrichment lookup failed, indicator exported without it: {error}"
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctiport_model::graph::ProfileIndicator;
    use serde_json::json;

    #[test]
    fn host_keys_are_normalized_and_only_for_hosts() {
        assert_eq!(
            host_key("hostname", "EVIL.Example.com."),
            Some("evil.example.com".into())
        );
        assert_eq!(
            host_key("ipaddress", "2001:DB8::1"),
            Some("2001:db8::1".into())
        );
        assert_eq!(host_key("ipaddress", "203.0.113.0/24"), None);
        assert_eq!(host_key("sslcertificate", "abc"), None);
        // Nothing is left of these once the root's dot goes: no host to look up.
        assert_eq!(host_key("hostname", "."), None);
        assert_eq!(host_key("hostname", "..."), None);
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
        let enricher = dump_enricher(dir.path());
        let first = host_of(&enricher, "A.example.").unwrap();
        assert_eq!(
            (
                first.registrar.as_deref(),
                first.reputation.as_ref().map(|r| r.score)
            ),
            (Some("R"), Some(90))
        );
        assert!(
            host_of(&enricher, "a.example").is_some(),
            "cached, not charged to the budget"
        );
        assert!(host_of(&enricher, "b.example").is_none(), "over the budget");
    }
}
