//! The Microsoft Defender for Endpoint custom indicators API (MicrosoftDocs/defender-docs
//! `defender-endpoint/api/`): `POST /api/indicators/import`, `POST /api/indicators/BatchDelete`,
//! `GET /api/indicators`, with the token's `roles` (`Ti.ReadWrite.All` / `Ti.ReadWrite`), the
//! per-API call limits, the 500-per-batch limit and the 15,000 active indicators per tenant,
//! shared with every other tool. docs/standins.md says which behaviour is documented.

pub mod filter;
pub mod indicator;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::{Grant, Tokens};
use crate::faults::Dice;
use crate::identity::resource::Api;
use crate::lock;
use crate::microsoft::faults::Faults;
use crate::microsoft::stamp::Stamp;
use crate::microsoft::window::{SlidingWindow, whole_seconds};
use crate::rng::guid;
use crate::throttle::Compliance;
use crate::timefmt::{Fraction, rfc3339};
use indicator::{Indicator, Submission};

pub const READ_WRITE_ALL: &str = "Ti.ReadWrite.All";
pub const READ_WRITE: &str = "Ti.ReadWrite";

/// Who the seeded, foreign indicators belong to.
pub const FOREIGN_APPLICATION: &str = "Contoso SOC";
pub const FOREIGN_CREATOR: &str = "soc-analyst@contoso.example";

#[derive(Clone, Debug)]
pub struct DefenderConfig {
    /// Active indicators per tenant (documented: 15,000).
    pub cap: usize,
    /// Indicators per import and ids per BatchDelete (documented: 500).
    pub max_batch: usize,
    /// Calls per window per app: import and BatchDelete 30, list 100 per minute (documented).
    pub import_per_window: usize,
    pub delete_per_window: usize,
    pub list_per_window: usize,
    pub window: Duration,
    /// Largest `$top` (documented: 10,000).
    pub max_top: usize,
    /// Request bodies above this get 413.
    pub max_body_bytes: usize,
    /// Device groups that exist; empty = any name.
    pub rbac_groups: Vec<String>,
    /// Indicators of another tool (`FOREIGN_APPLICATION`) present at start.
    pub foreign: usize,
    pub faults: Faults,
}

impl Default for DefenderConfig {
    fn default() -> Self {
        DefenderConfig {
            cap: 15_000,
            max_batch: 500,
            import_per_window: 30,
            delete_per_window: 30,
            list_per_window: 100,
            window: Duration::from_secs(60),
            max_top: 10_000,
            max_body_bytes: 4 * 1024 * 1024,
            rbac_groups: Vec::new(),
            foreign: 0,
            faults: Faults::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub import_calls: u64,
    pub delete_calls: u64,
    pub list_calls: u64,
    pub unauthorized: u64,
    pub forbidden: u64,
    pub bad_requests: u64,
    pub throttled: u64,
    pub early_requests: u64,
    pub faults_500: u64,
    pub indicators_created: u64,
    pub indicators_updated: u64,
    pub indicators_failed: u64,
    pub indicators_deleted: u64,
    pub cap_refusals: u64,
}

/// A write by one app to an indicator another created: what ctiport must never do.
#[derive(Clone, Debug, Serialize)]
pub struct ForeignWrite {
    pub operation: &'static str,
    pub id: String,
    #[serde(rename = "indicatorValue")]
    pub value: String,
    pub application: Option<String>,
    #[serde(rename = "createdBy")]
    pub created_by: String,
    pub by: String,
}

#[derive(Debug, Default)]
struct Tenant {
    indicators: BTreeMap<u64, Indicator>,
    by_key: HashMap<(String, String), u64>,
    next_id: u64,
    foreign_writes: Vec<ForeignWrite>,
    expired: u64,
}

fn now_stamp() -> Stamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

/// `2018-10-24T11:15:35.3688259Z`, as the API writes its own timestamps.
fn ticks_now() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    rfc3339(secs, Fraction::Ticks(d.subsec_nanos() / 100))
}

impl Tenant {
    /// Expired indicators are not active: they leave the list and the cap.
    fn purge_expired(&mut self, now: Stamp) {
        let gone: Vec<u64> = self
            .indicators
            .values()
            .filter(|i| i.is_expired(now))
            .map(|i| i.id)
            .collect();
        for id in gone {
            if let Some(i) = self.indicators.remove(&id) {
                self.by_key.remove(&i.submission.key());
                self.expired += 1;
            }
        }
    }

    fn insert(
        &mut self,
        submission: Submission,
        created_by: &str,
        source_type: &'static str,
    ) -> u64 {
        self.next_id = self.next_id.max(1000) + 1;
        let id = self.next_id;
        let at = ticks_now();
        self.by_key.insert(submission.key(), id);
        self.indicators.insert(
            id,
            Indicator {
                id,
                submission,
                created_by: created_by.to_owned(),
                source_type,
                created_at: at.clone(),
                last_update: at,
                last_updated_by: created_by.to_owned(),
            },
        );
        id
    }
}

#[derive(Debug)]
pub struct Defender {
    config: DefenderConfig,
    tenant: Mutex<Tenant>,
    import_window: Mutex<SlidingWindow>,
    delete_window: Mutex<SlidingWindow>,
    list_window: Mutex<SlidingWindow>,
    compliance: Mutex<Compliance>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    dice: Dice,
}

/// The error envelope of every Defender API (`common-errors.md`): `{"error":{"code","message","target"}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({"error": {"code": code, "message": message, "target": guid(&mut rand::rng())}});
    (
        status,
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Which call an endpoint is, for its own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Import,
    BatchDelete,
    List,
}

impl Defender {
    pub fn new(config: DefenderConfig, seed: u64, early_tolerance: Duration) -> Self {
        let window = |n| Mutex::new(SlidingWindow::new(n, config.window));
        let defender = Defender {
            import_window: window(config.import_per_window),
            delete_window: window(config.delete_per_window),
            list_window: window(config.list_per_window),
            compliance: Mutex::new(Compliance::new(early_tolerance)),
            faults: Mutex::new(config.faults.clone()),
            tenant: Mutex::new(Tenant::default()),
            stats: Mutex::new(Stats::default()),
            dice: Dice::new(seed ^ 0xdef_e2de),
            config,
        };
        defender.seed_foreign();
        defender
    }

    /// `--defender-foreign N`: IpAddress indicators from 198.18.0.0/15 of another application.
    fn seed_foreign(&self) {
        let mut tenant = lock(&self.tenant);
        for n in 0..self.config.foreign {
            let submission = Submission {
                value: format!("198.{}.{}.{}", 18 + (n >> 16) % 2, (n >> 8) & 255, n & 255),
                kind: "IpAddress".into(),
                action: "Block".into(),
                application: Some(FOREIGN_APPLICATION.into()),
                title: format!("SOC block {n}"),
                description: "Seeded by ctiport-sim: another tool's indicator.".into(),
                recommended_actions: None,
                severity: Some("High".into()),
                expiration: None,
                rbac_group_names: Vec::new(),
                generate_alert: Some(true),
                external_id: None,
                educate_url: None,
            };
            tenant.insert(submission, FOREIGN_CREATOR, "User");
        }
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }

    /// Authentication, permission and the call's limit, in that order; the refusal otherwise.
    pub fn gate(
        &self,
        tokens: &Tokens,
        headers: &HeaderMap,
        call: Call,
        now: Instant,
    ) -> Result<Grant, Box<Response>> {
        self.count(|s| {
            s.requests += 1;
            match call {
                Call::Import => s.import_calls += 1,
                Call::BatchDelete => s.delete_calls += 1,
                Call::List => s.list_calls += 1,
            }
        });
        if lock(&self.compliance).is_early(now) {
            self.count(|s| s.early_requests += 1);
        }
        let grant = tokens
            .check_for(headers.get(AUTHORIZATION), now, Api::Defender)
            .map_err(|_| {
                self.count(|s| s.unauthorized += 1);
                Box::new(error(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Unauthorized (invalid or expired authorization header).",
                ))
            })?;
        if !grant.has_role(READ_WRITE_ALL) && !grant.has_role(READ_WRITE) {
            self.count(|s| s.forbidden += 1);
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Forbidden (valid token but insufficient permission for the action). The application needs Ti.ReadWrite.All (or Ti.ReadWrite).",
            )));
        }
        let window = match call {
            Call::Import => &self.import_window,
            Call::BatchDelete => &self.delete_window,
            Call::List => &self.list_window,
        };
        let limited = lock(window).try_call(&grant.client_id, now);
        if let Err(wait) = limited {
            self.count(|s| s.throttled += 1);
            let secs = whole_seconds(wait);
            lock(&self.compliance).told(now, now + Duration::from_secs(secs));
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Response represents reaching quota limit either by number of requests or by CPU.",
            );
            // "A Retry-After in the response header indicating how long to wait (in seconds)".
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
            return Err(Box::new(response));
        }
        Ok(grant)
    }

    fn bad_request(&self, code: &str, message: &str) -> Response {
        self.count(|s| s.bad_requests += 1);
        error(StatusCode::BAD_REQUEST, code, message)
    }

    fn server_fault(&self) -> Option<Response> {
        lock(&self.faults).fail_call(&self.dice).then(|| {
            self.count(|s| s.faults_500 += 1);
            error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "")
        })
    }

    pub fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// `POST /api/indicators/import` after the gate.
    pub fn import(&self, grant: &Grant, body: &[u8]) -> Response {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return self.bad_request("InvalidRequestBody", "Request body is incorrect");
        };
        let Some(items) = fields.get("Indicators") else {
            return self.bad_request(
                "MissingRequiredParameter",
                "Parameter Indicators is missing.",
            );
        };
        let Some(items) = items.as_array() else {
            return self.bad_request("InvalidRequestBody", "Indicators must be a list.");
        };
        if items.is_empty() {
            return self.bad_request(
                "InvalidInput",
                "Invalid input: the Indicators list is empty.",
            );
        }
        if items.len() > self.config.max_batch {
            return self.bad_request(
                "MaximumBatchSizeExceeded",
                &format!(
                    "Maximum batch size exceeded. Received: {}, allowed: {}.",
                    items.len(),
                    self.config.max_batch
                ),
            );
        }
        if let Some(fault) = self.server_fault() {
            return fault;
        }
        let faults = lock(&self.faults).clone();
        let mut tenant = lock(&self.tenant);
        tenant.purge_expired(now_stamp());
        let see_all = grant.has_role(READ_WRITE_ALL);
        let results: Vec<Value> = items
            .iter()
            .map(|item| {
                let shown = item
                    .get("indicatorValue")
                    .cloned()
                    .unwrap_or(Value::Null);
                match self.import_one(&mut tenant, grant, see_all, item, &faults) {
                    Ok(id) => json!({"id": id.to_string(), "indicator": shown, "isFailed": false, "failureReason": null}),
                    Err(reason) => {
                        self.count(|s| s.indicators_failed += 1);
                        json!({"id": null, "indicator": shown, "isFailed": true, "failureReason": reason})
                    }
                }
            })
            .collect();
        ok_json(StatusCode::OK, &json!({ "value": results }))
    }

    fn import_one(
        &self,
        tenant: &mut Tenant,
        grant: &Grant,
        see_all: bool,
        item: &Value,
        faults: &Faults,
    ) -> Result<u64, String> {
        let submission = indicator::check(item, &self.config.rbac_groups)?;
        if faults.reject_object(&submission.value, &self.dice) {
            return Err("Rejected by ctiport-sim fault injection.".into());
        }
        let existing = tenant.by_key.get(&submission.key()).copied();
        let Some(id) = existing else {
            let active = tenant.indicators.len();
            if active >= self.config.cap {
                self.count(|s| s.cap_refusals += 1);
                return Err(format!(
                    "The tenant has reached the limit of {} active indicators.",
                    self.config.cap
                ));
            }
            self.count(|s| s.indicators_created += 1);
            return Ok(tenant.insert(submission, &grant.client_id, "AadApp"));
        };
        let Some(old) = tenant.indicators.get(&id) else {
            return Err("Internal inconsistency".into());
        };
        let foreign = old.created_by != grant.client_id;
        if foreign && !see_all {
            return Err(format!(
                "Forbidden: indicator {id} was created by another application and the app has Ti.ReadWrite only."
            ));
        }
        let record = foreign.then(|| ForeignWrite {
            operation: "update",
            id: id.to_string(),
            value: old.submission.value.clone(),
            application: old.submission.application.clone(),
            created_by: old.created_by.clone(),
            by: grant.client_id.clone(),
        });
        if let Some(record) = record {
            tenant.foreign_writes.push(record);
        }
        if let Some(old) = tenant.indicators.get_mut(&id) {
            // "application … only works for new indicators. It doesn't update the value on an
            // existing indicator."
            let application = old.submission.application.clone();
            old.submission = Submission {
                application,
                ..submission
            };
            old.last_update = ticks_now();
            old.last_updated_by = grant.client_id.clone();
        }
        self.count(|s| s.indicators_updated += 1);
        Ok(id)
    }

    /// `POST /api/indicators/BatchDelete` after the gate: all or nothing.
    pub fn batch_delete(&self, grant: &Grant, body: &[u8]) -> Response {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return self.bad_request("InvalidRequestBody", "Request body is incorrect");
        };
        let Some(Value::Array(items)) = fields.get("IndicatorIds") else {
            return self.bad_request(
                "MissingRequiredParameter",
                "Parameter IndicatorIds is missing.",
            );
        };
        if items.is_empty() || items.len() > self.config.max_batch {
            return self.bad_request(
                "InvalidInput",
                &format!(
                    "Invalid input: IndicatorIds must hold 1 to {} ids; received {}.",
                    self.config.max_batch,
                    items.len()
                ),
            );
        }
        let mut ids = Vec::with_capacity(items.len());
        for item in items {
            let parsed = match item {
                Value::String(s) => s.parse::<u64>().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            };
            match parsed {
                Some(id) => ids.push(id),
                None => return self.bad_request("InvalidInput", &format!("Invalid input {item}.")),
            }
        }
        if let Some(fault) = self.server_fault() {
            return fault;
        }
        let mut tenant = lock(&self.tenant);
        tenant.purge_expired(now_stamp());
        if let Some(missing) = ids.iter().find(|id| !tenant.indicators.contains_key(id)) {
            return error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("Indicator {missing} was not found"),
            );
        }
        let see_all = grant.has_role(READ_WRITE_ALL);
        let hidden = ids.iter().find(|id| {
            !see_all
                && tenant
                    .indicators
                    .get(id)
                    .is_some_and(|i| i.created_by != grant.client_id)
        });
        if let Some(id) = hidden {
            self.count(|s| s.forbidden += 1);
            return error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!("The application is not exposed to indicator {id}."),
            );
        }
        for id in ids {
            if let Some(old) = tenant.indicators.remove(&id) {
                tenant.by_key.remove(&old.submission.key());
                if old.created_by != grant.client_id {
                    tenant.foreign_writes.push(ForeignWrite {
                        operation: "delete",
                        id: id.to_string(),
                        value: old.submission.value.clone(),
                        application: old.submission.application.clone(),
                        created_by: old.created_by.clone(),
                        by: grant.client_id.clone(),
                    });
                }
                self.count(|s| s.indicators_deleted += 1);
            }
        }
        StatusCode::NO_CONTENT.into_response()
    }

    /// `GET /api/indicators` after the gate.
    pub fn list(&self, grant: &Grant, base_url: &str, query: Option<&str>) -> Response {
        let mut filter = None;
        let mut top = self.config.max_top;
        let mut skip = 0usize;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let bad = |m: String| self.bad_request("ODataError", &m);
            match key.as_ref() {
                "$filter" => match filter::parse(&value) {
                    Ok(f) => filter = Some(f),
                    Err(e) => return bad(format!("Invalid OData $filter: {e}.")),
                },
                "$top" => match value.parse::<usize>() {
                    Ok(n) if n <= self.config.max_top => top = n,
                    Ok(n) => {
                        return bad(format!(
                            "The limit of '{}' for Top query has been exceeded. The value from the incoming request is '{n}'.",
                            self.config.max_top
                        ));
                    }
                    Err(_) => return bad(format!("Invalid OData $top '{value}'.")),
                },
                "$skip" => match value.parse::<usize>() {
                    Ok(n) => skip = n,
                    Err(_) => return bad(format!("Invalid OData $skip '{value}'.")),
                },
                other if other.starts_with('$') => {
                    return bad(format!("Query option '{other}' is not supported."));
                }
                _ => {}
            }
            if key != "$skip" {
                kept.push((key.into_owned(), value.into_owned()));
            }
        }
        let mut tenant = lock(&self.tenant);
        tenant.purge_expired(now_stamp());
        let see_all = grant.has_role(READ_WRITE_ALL);
        // "If the Application has Ti.ReadWrite.All permission, it will be exposed to all
        // Indicators. Otherwise, it will be exposed only to the Indicators it created."
        let matching: Vec<Value> = tenant
            .indicators
            .values()
            .filter(|i| see_all || i.created_by == grant.client_id)
            .map(Indicator::to_json)
            .filter(|e| filter.as_ref().is_none_or(|f| f.matches(e)))
            .collect();
        drop(tenant);
        let total = matching.len();
        let page: Vec<Value> = matching.into_iter().skip(skip).take(top).collect();
        let mut body = serde_json::Map::new();
        body.insert(
            "@odata.context".into(),
            json!(format!("{base_url}/api/$metadata#Indicators")),
        );
        body.insert("value".into(), Value::Array(page));
        if top > 0 && skip + top < total {
            let mut next = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &kept {
                next.append_pair(k, v);
            }
            next.append_pair("$skip", &(skip + top).to_string());
            body.insert(
                "@odata.nextLink".into(),
                json!(format!("{base_url}/api/indicators?{}", next.finish())),
            );
        }
        ok_json(StatusCode::OK, &Value::Object(body))
    }

    /// `POST /_sim/defender/seed`: indicators of another tool, `{"Indicators": [...],
    /// "createdBy": "…"}`; each must be valid, and the cap is not checked (set-up only).
    pub fn seed(&self, body: &Value) -> Result<Vec<u64>, String> {
        let creator = body
            .get("createdBy")
            .and_then(Value::as_str)
            .unwrap_or(FOREIGN_CREATOR)
            .to_owned();
        let items = body
            .get("Indicators")
            .and_then(Value::as_array)
            .ok_or("Indicators must be a list")?;
        let submissions = items
            .iter()
            .map(|i| indicator::check(i, &self.config.rbac_groups))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tenant = lock(&self.tenant);
        Ok(submissions
            .into_iter()
            .map(|s| tenant.insert(s, &creator, "User"))
            .collect())
    }

    /// `GET /_sim/defender/indicators`: every active indicator, and what tests check.
    pub fn inspect(&self) -> Value {
        let mut tenant = lock(&self.tenant);
        tenant.purge_expired(now_stamp());
        let mut by_application: BTreeMap<String, usize> = BTreeMap::new();
        for i in tenant.indicators.values() {
            let app = i.submission.application.clone().unwrap_or_default();
            *by_application.entry(app).or_default() += 1;
        }
        json!({
            "active": tenant.indicators.len(),
            "cap": self.config.cap,
            "by_application": by_application,
            "expired_removed": tenant.expired,
            "foreign_writes": tenant.foreign_writes,
            "indicators": tenant.indicators.values().map(Indicator::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn stats(&self) -> Value {
        json!({"stats": *lock(&self.stats), "faults": *lock(&self.faults)})
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// `POST /_sim/defender/reset`: the tenant, counters and limits as at start.
    pub fn reset(&self) {
        *lock(&self.tenant) = Tenant::default();
        *lock(&self.stats) = Stats::default();
        for w in [&self.import_window, &self.delete_window, &self.list_window] {
            lock(w).clear();
        }
        lock(&self.compliance).clear();
        *lock(&self.faults) = self.config.faults.clone();
        self.seed_foreign();
    }
}
