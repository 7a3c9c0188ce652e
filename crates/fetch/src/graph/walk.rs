//! The walk: list `intelProfiles` (or GET the requested ones), then each profile's `indicators`,
//! following `@odata.nextLink` verbatim until it is absent.
//!
//! Indicator pages of several profiles are fetched concurrently, yet records come out in listing
//! order — each profile, then its indicators — exactly as from a dump, so a live run and a run on
//! its dump produce the same objects. Each profile's pages go into a small bounded channel; at most
//! `concurrency` profiles are in flight ahead of the one being consumed, so memory stays bounded.

use std::collections::HashSet;
use std::sync::Arc;

use ctiport_model::graph::raw_record_id;
use ctiport_model::pct::pct;
use ctiport_model::record::{RecordKind, Rejection, SourceRecord};
use ctiport_model::selection::ProfileSelection;
use serde_json::Value;
use tokio::sync::mpsc;

use super::capture::{Capture, capture_with};
use super::client::GraphClient;
use super::config::GraphConfig;
use super::enricher::GraphEnricher;
use super::error::GraphError;
use crate::enrich::EnrichOptions;
use crate::records::{indicator_record, profile_record};

/// Pages of one profile buffered ahead of the consumer.
const PAGES_AHEAD: usize = 2;

/// What the profile lister hands to the consumer, in listing order.
enum Listed {
    /// A profile and the pages of its indicators, fetched ahead.
    Profile(Value, mpsc::Receiver<Page>),
    /// A profile left out by the selection, or one requested by id that does not exist.
    Record(Box<SourceRecord>),
}

/// What a profile's indicator fetcher hands to the consumer.
enum Page {
    Records(Vec<Value>),
    /// The rest of this profile's indicators could not be fetched.
    Lost(GraphError),
    /// Graph answered 404 for this profile's indicators: the profile's listing is unreadable,
    /// which is never the same as empty.
    Unreadable(GraphError),
}

/// `{collection}/{id}`, the id one path segment. `.` and `..` cannot be one: URL parsers (the
/// HTTP client's included) resolve them away, and `%2E` is no way round it, since the URL
/// standard reads it as a dot too. Those two take OData's key syntax, `{collection}('{id}')`,
/// which Graph serves as well (reference `graph-ti-api.md` §3).
pub(crate) fn entity_path(collection: &str, id: &str) -> String {
    match id {
        "." | ".." => format!("{collection}('{id}')"),
        _ => format!("{collection}/{}", pct(id)),
    }
}

pub struct GraphWalk {
    client: Arc<GraphClient>,
    config: Arc<GraphConfig>,
    enricher: Option<Arc<GraphEnricher>>,
    capture: Option<Capture>,
}

/// One page of a collection: its records and the link to the next page. A 200 without a
/// `value` member (an error page from a proxy, say) is not an empty last page.
fn split_page(mut page: Value) -> Result<(Vec<Value>, Option<String>), GraphError> {
    let next = page
        .get("@odata.nextLink")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let records = match page.get_mut("value").map(Value::take) {
        Some(Value::Array(items)) => items,
        // Some beta responses wrap a single entity as {"value": {...}}.
        Some(single @ Value::Object(_)) => vec![single],
        Some(Value::Null) => Vec::new(),
        _ => {
            return Err(GraphError::Invalid(
                "a collection page without a \"value\" array".into(),
            ));
        }
    };
    Ok((records, next))
}

impl GraphWalk {
    pub fn new(client: Arc<GraphClient>, config: Arc<GraphConfig>) -> Self {
        let enricher = config.enrich.filter(EnrichOptions::any).map(|options| {
            Arc::new(
                GraphEnricher::new(client.clone(), config.ti_base(), options)
                    .gated(config.enrich_gate.clone()),
            )
        });
        GraphWalk {
            client,
            config,
            enricher,
            capture: None,
        }
    }

    /// Also writes everything fetched, verbatim, to `capture`.
    pub fn capturing(mut self, capture: Capture) -> Self {
        if let Some(enricher) = self.enricher.take() {
            let options = enricher.options();
            self.enricher = Some(Arc::new(
                GraphEnricher::new(self.client.clone(), self.config.ti_base(), options)
                    .gated(self.config.enrich_gate.clone())
                    .capturing(capture.clone()),
            ));
        }
        self.capture = Some(capture);
        self
    }

    /// Another handle on the same walk, for a spawned task.
    fn handle(&self) -> GraphWalk {
        GraphWalk {
            client: self.client.clone(),
            config: self.config.clone(),
            enricher: self.enricher.clone(),
            capture: self.capture.clone(),
        }
    }

    /// Sends every record to `out`. Fatal errors (authentication, permission, circuit breaker,
    /// the profile listing itself) end the walk with an error; a profile whose indicators cannot be
    /// fetched is reported as a rejection and the walk goes on.
    pub async fn run(&self, out: mpsc::Sender<SourceRecord>) -> Result<(), GraphError> {
        let (queue_tx, mut queue_rx) = mpsc::channel::<Listed>(self.config.concurrency.max(1));
        let lister = {
            let walk = self.handle();
            tokio::spawn(async move { walk.list_profiles(queue_tx).await })
        };
        while let Some(listed) = queue_rx.recv().await {
            let (profile, mut pages) = match listed {
                Listed::Profile(profile, pages) => (profile, pages),
                Listed::Record(record) => {
                    if out.send(*record).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            let id = raw_record_id(&profile).unwrap_or_default();
            capture_with(&self.capture, |dump| dump.profile(&profile))?;
            if out.send(profile_record(profile)).await.is_err() {
                return Ok(());
            }
            while let Some(page) = pages.recv().await {
                let records = match page {
                    Page::Records(values) => {
                        let mut records = Vec::with_capacity(values.len());
                        for value in values {
                            capture_with(&self.capture, |dump| dump.indicator(&id, &value))?;
                            let mut record = indicator_record(&id, value);
                            if let Some(enricher) = &self.enricher {
                                enricher.enrich(&mut record).await;
                            }
                            records.push(record);
                        }
                        records
                    }
                    // Records the service failed to deliver are not malformed input: exporting the
                    // rest as a routine partial run would silently shrink every consumer's data.
                    // The run fails, commits nothing, and the next run fetches them again.
                    Page::Lost(error) if error.is_fatal() => return Err(error),
                    Page::Lost(error) => {
                        return Err(GraphError::Invalid(format!(
                            "the indicators of profile '{id}' could not all be fetched: {error}"
                        )));
                    }
                    // Rejected as a file would be: the run is partial and nothing of this
                    // profile is revoked.
                    Page::Unreadable(error) => vec![SourceRecord::Rejected(Rejection {
                        id: format!("{}/indicators", entity_path("intelProfiles", &id)),
                        record: RecordKind::File,
                        reason: format!(
                            "the indicators of profile '{id}' could not be read: {error}"
                        ),
                    })],
                };
                for record in records {
                    if out.send(record).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        lister
            .await
            .map_err(|e| GraphError::Invalid(format!("the profile lister stopped: {e}")))?
    }

    /// Lists profiles page by page and starts an indicator fetcher for each, in order.
    async fn list_profiles(&self, queue: mpsc::Sender<Listed>) -> Result<(), GraphError> {
        let base = self.config.ti_base();
        let mut seen = HashSet::new();
        if !self.config.selection.ids.is_empty() {
            for id in self.config.selection.unique_ids() {
                let url = format!("{base}/{}", entity_path("intelProfiles", id));
                let offered = match self.client.get_json(&url).await {
                    Ok(profile) => self.offer(split_single(profile), &queue, &mut seen).await,
                    Err(GraphError::NotFound { .. }) => {
                        let rejection = Rejection {
                            id: id.to_owned(),
                            record: RecordKind::Profile,
                            reason: "requested with --profile, but Graph has no profile with this id (404)".into(),
                        };
                        let record = Box::new(SourceRecord::Rejected(rejection));
                        queue.send(Listed::Record(record)).await.is_ok()
                    }
                    Err(error) => return Err(error),
                };
                if !offered {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let mut url = format!("{base}/intelProfiles");
        let mut query = Vec::new();
        if let Some(kind) = &self.config.selection.kind {
            query.push(format!(
                "$filter={}",
                encode_query_value(&format!("kind eq '{}'", kind.as_str()))
            ));
        }
        if let Some(top) = self.config.page_size {
            query.push(format!("$top={top}"));
        }
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let mut next = Some(url);
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > self.config.max_pages {
                return Err(GraphError::Invalid(format!(
                    "the profile listing exceeded {} pages; stopping",
                    self.config.max_pages
                )));
            }
            let (records, link) = split_page(self.client.get_json(&url).await?)?;
            for profile in records {
                if !self.offer(profile, &queue, &mut seen).await {
                    return Ok(());
                }
            }
            next = link;
        }
        Ok(())
    }

    /// Queues a listed or fetched profile, unless `--kind` leaves it out: what comes back is
    /// checked too, for profiles fetched by id and for a server that ignored `$filter`. A profile
    /// left out is queued as filtered and its indicators are not fetched. False when the consumer
    /// has gone.
    async fn offer(
        &self,
        profile: Value,
        queue: &mpsc::Sender<Listed>,
        seen: &mut HashSet<String>,
    ) -> bool {
        let kind_only = ProfileSelection {
            kind: self.config.selection.kind.clone(),
            ids: Vec::new(),
        };
        match kind_only.filtered_raw(&profile) {
            Some(filtered) => {
                let record = Box::new(SourceRecord::Filtered(filtered));
                queue.send(Listed::Record(record)).await.is_ok()
            }
            None => self.enqueue(profile, queue, seen).await,
        }
    }

    /// Starts the indicator fetcher of one profile and queues it for the consumer. Offset paging
    /// can list a profile twice when the listing shifts; the repeat is dropped.
    async fn enqueue(
        &self,
        profile: Value,
        queue: &mpsc::Sender<Listed>,
        seen: &mut HashSet<String>,
    ) -> bool {
        let id = raw_record_id(&profile);
        if let Some(id) = &id
            && !seen.insert(id.clone())
        {
            tracing::debug!(profile = %id, "profile listed twice; fetched once");
            return true;
        }
        let (pages_tx, pages_rx) = mpsc::channel(PAGES_AHEAD);
        if let Some(id) = id {
            let fetcher = self.handle();
            tokio::spawn(async move { fetcher.fetch_indicators(&id, pages_tx).await });
        }
        queue.send(Listed::Profile(profile, pages_rx)).await.is_ok()
    }

    async fn fetch_indicators(&self, profile_id: &str, pages: mpsc::Sender<Page>) {
        let mut url = format!(
            "{}/{}/indicators",
            self.config.ti_base(),
            entity_path("intelProfiles", profile_id)
        );
        if let Some(top) = self.config.page_size {
            url = format!("{url}?$top={top}");
        }
        let mut next = Some(url);
        let mut count = 0usize;
        while let Some(url) = next.take() {
            count += 1;
            if count > self.config.max_pages {
                let error = GraphError::Invalid(format!(
                    "more than {} pages of indicators; stopping this profile",
                    self.config.max_pages
                ));
                let _ = pages.send(Page::Lost(error)).await;
                return;
            }
            match self.client.get_json(&url).await.and_then(split_page) {
                Ok((records, link)) => {
                    if let Some(enricher) = &self.enricher {
                        enricher.prefetch(&records);
                    }
                    if pages.send(Page::Records(records)).await.is_err() {
                        return;
                    }
                    next = link;
                }
                // The listing names this profile, so its collection exists: one that cannot be
                // found is not an empty one. (Another 4xx may be wrong for every profile alike,
                // a bad option say, so it still fails the run.)
                Err(error @ GraphError::NotFound { .. }) => {
                    let _ = pages.send(Page::Unreadable(error)).await;
                    return;
                }
                Err(error) => {
                    let _ = pages.send(Page::Lost(error)).await;
                    return;
                }
            }
        }
    }
}

/// A single entity, unwrapped from `{"value": {...}}` when a beta endpoint wraps it.
fn split_single(entity: Value) -> Value {
    match entity {
        Value::Object(mut map)
            if !map.contains_key("id") && map.get("value").is_some_and(Value::is_object) =>
        {
            map.remove("value").unwrap_or_default()
        }
        other => other,
    }
}

/// Percent-encodes an OData query value (spaces, quotes) for a URL query string.
fn encode_query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::loopback::{self, Answer};
    use crate::records::describe;
    use serde_json::json;

    const BASE: &str = "/v1.0/security/threatIntelligence";

    fn profile(id: &str) -> Value {
        json!({"id": id, "kind": "actor", "title": id})
    }

    /// Walks a loopback Graph; returns the records as text and the requests it received.
    async fn walk(
        selection: &[&str],
        answer: impl Fn(&str, &str) -> Answer + Send + Sync + 'static,
    ) -> (Result<Vec<String>, String>, Vec<String>) {
        let server = loopback::serve(answer).await;
        let mut config = server.config;
        config.selection.ids = selection.iter().map(|id| id.to_string()).collect();
        let config = Arc::new(config);
        let client = Arc::new(GraphClient::new(&config).unwrap());
        let (tx, mut rx) = mpsc::channel(64);
        let run = tokio::spawn(async move { GraphWalk::new(client, config).run(tx).await });
        let mut seen = Vec::new();
        while let Some(record) = rx.recv().await {
            seen.push(describe(record));
        }
        let result = run.await.unwrap().map(|()| seen).map_err(|e| e.to_string());
        let requests = server.requests.lock().unwrap().clone();
        (result, requests)
    }

    #[tokio::test]
    async fn a_404_on_a_listed_profiles_indicators_is_a_rejection_naming_it() {
        let (result, _) = walk(&[], |path, _| {
            match path.strip_prefix(BASE).unwrap_or(path) {
                "/intelProfiles" => loopback::page(&[profile("gone"), profile("ok")]),
                "/intelProfiles/ok/indicators" => loopback::page(&[json!({"id": "i1"})]),
                _ => loopback::not_found(),
            }
        })
        .await;
        let seen = result.unwrap();
        assert_eq!(seen[0], "profile gone");
        // After its profile and before the next one: the state store holds back revocation for
        // the profile whose listing a rejection of this kind interrupts.
        assert!(
            seen[1].starts_with("rejected intelProfiles/gone/indicators (File): the indicators of profile 'gone' could not be read")
                && seen[1].contains("404"),
            "{seen:?}"
        );
        assert_eq!(&seen[2..], ["profile ok", "indicator ok/i1"]);
    }

    #[tokio::test]
    async fn a_404_on_a_later_page_keeps_what_was_read_and_rejects_the_rest() {
        let (result, _) = walk(&[], |path, origin| {
            match path.strip_prefix(BASE).unwrap_or(path) {
            "/intelProfiles" => loopback::page(&[profile("p"), profile("q")]),
            "/intelProfiles/p/indicators" => (
                200,
                json!({"value": [{"id": "i1"}], "@odata.nextLink": format!("{origin}{BASE}/next")})
                    .to_string(),
            ),
            "/intelProfiles/q/indicators" => loopback::page(&[json!({"id": "i2"})]),
            _ => loopback::not_found(),
        }
        })
        .await;
        let seen = result.unwrap();
        assert_eq!(&seen[..2], ["profile p", "indicator p/i1"]);
        assert!(
            seen[2].starts_with("rejected intelProfiles/p/indicators (File): the indicators of profile 'p' could not be read"),
            "{seen:?}"
        );
        assert_eq!(&seen[3..], ["profile q", "indicator q/i2"]);
    }

    #[tokio::test]
    async fn every_id_reaches_graph_as_one_path_segment() {
        let answer = |path: &str, _: &str| match path.strip_prefix(BASE).unwrap_or(path) {
            "/intelProfiles" => loopback::page(&[profile("."), profile(".."), profile("a/b")]),
            "/intelProfiles('.')" => (200, profile(".").to_string()),
            "/intelProfiles('..')" => (200, profile("..").to_string()),
            "/intelProfiles('.')/indicators" => loopback::page(&[json!({"id": "i-dot"})]),
            "/intelProfiles('..')/indicators" => loopback::page(&[json!({"id": "i-dotdot"})]),
            "/intelProfiles/a%2Fb/indicators" => loopback::page(&[json!({"id": "i-ab"})]),
            _ => loopback::not_found(),
        };
        let (result, requests) = walk(&[], answer).await;
        assert_eq!(
            result.unwrap(),
            [
                "profile .",
                "indicator ./i-dot",
                "profile ..",
                "indicator ../i-dotdot",
                "profile a/b",
                "indicator a/b/i-ab",
            ],
            "{requests:?}"
        );
        let (result, requests) = walk(&["..", "."], answer).await;
        assert_eq!(
            result.unwrap(),
            [
                "profile ..",
                "indicator ../i-dotdot",
                "profile .",
                "indicator ./i-dot"
            ],
            "{requests:?}"
        );
        assert!(
            requests.contains(&format!("GET {BASE}/intelProfiles('..')")),
            "{requests:?}"
        );
    }

    #[test]
    fn splits_pages_and_wrapped_entities() {
        let (records, next) = split_page(
            json!({"@odata.nextLink": "https://g/x?$skip=2", "value": [{"id": "a"}, {"id": "b"}]}),
        )
        .unwrap();
        assert_eq!(
            (records.len(), next.as_deref()),
            (2, Some("https://g/x?$skip=2"))
        );
        assert_eq!(
            split_page(json!({"value": {"id": "a"}})).unwrap().0,
            vec![json!({"id": "a"})]
        );
        assert_eq!(split_page(json!({"value": []})).unwrap(), (vec![], None));
        assert!(split_page(json!({"error": {"code": "x"}})).is_err());
        assert_eq!(
            split_single(json!({"value": {"id": "a"}})),
            json!({"id": "a"})
        );
        assert_eq!(
            encode_query_value("kind eq 'actor'"),
            "kind%20eq%20%27actor%27"
        );
    }
}
