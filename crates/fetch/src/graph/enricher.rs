//! `--enrich` from the live API: `hosts/{id}` and `hosts/{id}/reputation`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ctiport_model::graph::ProfileIndicator;
use ctiport_model::host::{HostFacts, Reputation};
use ctiport_model::record::SourceRecord;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::capture::{Capture, capture_with};
use super::client::GraphClient;
use super::error::GraphError;
use super::walk::entity_path;
use crate::enrich::{Budget, EnrichGate, EnrichOptions, combine, host_slot, raw_host_key};

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
