//! The Microsoft Sentinel Threat Intelligence upload API (STIX objects), as MicrosoftDocs/azure-docs
//! `articles/sentinel/stix-objects-api.md` documents it:
//! `POST /workspaces/{workspaceId}/threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview`.
//! docs/standins.md says which behaviour is documented and which assumed.

pub mod store;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::{TokenProblem, Tokens};
use crate::faults::Dice;
use crate::identity::resource::Api;
use crate::json::ObjectWriter;
use crate::lock;
use crate::microsoft::faults::Faults;
use crate::microsoft::window::{SlidingWindow, whole_seconds};
use crate::rng::guid;
use crate::throttle::Compliance;
use store::{Outcome, Workspace};

pub const API_VERSION: &str = "2024-02-01-preview";
pub const UPLOAD_ACTION: &str = "threat-intelligence-stix-objects:upload";
/// "The value `Microsoft Sentinel` is restricted."
pub const RESTRICTED_SOURCE: &str = "Microsoft Sentinel";

#[derive(Clone, Debug)]
pub struct SentinelConfig {
    /// Workspace ids that exist; others get 404.
    pub workspaces: Vec<String>,
    /// Objects per request (documented: 100).
    pub max_objects: usize,
    /// Requests per window per user (documented: 100 per minute).
    pub requests_per_window: usize,
    pub window: Duration,
    /// Send `Retry-After` on 429 too (the page shows only the body).
    pub retry_after_header: bool,
    /// Whether the app holds Microsoft Sentinel Contributor on the workspaces.
    pub contributor: bool,
    pub faults: Faults,
}

impl Default for SentinelConfig {
    fn default() -> Self {
        SentinelConfig {
            workspaces: vec!["sim-workspace".into()],
            max_objects: 100,
            requests_per_window: 100,
            window: Duration::from_secs(60),
            retry_after_header: false,
            contributor: true,
            faults: Faults::default(),
        }
    }
}

/// Request counters, for `GET /_sim/sentinel/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub accepted_requests: u64,
    pub unauthorized: u64,
    pub forbidden: u64,
    pub not_found: u64,
    pub bad_requests: u64,
    pub throttled: u64,
    pub early_requests: u64,
    pub faults_500: u64,
    pub objects_received: u64,
    pub objects_rejected: u64,
}

#[derive(Debug)]
pub struct Sentinel {
    config: SentinelConfig,
    workspaces: Mutex<BTreeMap<String, Workspace>>,
    window: Mutex<SlidingWindow>,
    compliance: Mutex<Compliance>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    dice: Dice,
}

/// An upload's non-200 answer: `{"statusCode":…,"message":…}` as the documented 429 body, with
/// the `activityId` a real 500 carries.
fn failure(status: StatusCode, message: &str) -> Response {
    let body = ObjectWriter::new()
        .num("statusCode", i64::from(status.as_u16()))
        .str("message", message)
        .str("activityId", &guid(&mut rand::rng()))
        .finish();
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

impl Sentinel {
    pub fn new(config: SentinelConfig, seed: u64, early_tolerance: Duration) -> Self {
        Sentinel {
            window: Mutex::new(SlidingWindow::new(
                config.requests_per_window,
                config.window,
            )),
            compliance: Mutex::new(Compliance::new(early_tolerance)),
            faults: Mutex::new(config.faults.clone()),
            workspaces: Mutex::new(
                config
                    .workspaces
                    .iter()
                    .map(|w| (w.to_ascii_lowercase(), Workspace::default()))
                    .collect(),
            ),
            stats: Mutex::new(Stats::default()),
            dice: Dice::new(seed ^ 0x5e27_1e1a),
            config,
        }
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.stats));
    }

    /// The whole upload pipeline: auth, throttle, permission, workspace, request, objects.
    pub fn upload(
        &self,
        tokens: &Tokens,
        workspace: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        now: Instant,
    ) -> Response {
        self.count(|s| s.requests += 1);
        if lock(&self.compliance).is_early(now) {
            self.count(|s| s.early_requests += 1);
        }
        let grant = match tokens.check_for(headers.get(AUTHORIZATION), now, Api::Management) {
            Ok(grant) => grant,
            Err(problem) => {
                self.count(|s| s.unauthorized += 1);
                let message = match problem {
                    TokenProblem::Missing => "Unauthorized. Access token is missing or invalid.",
                    TokenProblem::Expired => "Unauthorized. The access token is expired.",
                    TokenProblem::Unknown | TokenProblem::WrongAudience => {
                        "Unauthorized. The access token is invalid or its audience is not https://management.azure.com."
                    }
                };
                return failure(StatusCode::UNAUTHORIZED, message);
            }
        };
        if let Err(wait) = lock(&self.window).try_call(&grant.client_id, now) {
            return self.throttled(wait, now);
        }
        if !self.config.contributor {
            self.count(|s| s.forbidden += 1);
            return failure(
                StatusCode::FORBIDDEN,
                &format!(
                    "The client '{}' does not have authorization to perform action 'Microsoft.SecurityInsights/threatIntelligence/write' on workspace '{workspace}'. It needs the Microsoft Sentinel Contributor role.",
                    grant.client_id
                ),
            );
        }
        let key = workspace.to_ascii_lowercase();
        if !lock(&self.workspaces).contains_key(&key) {
            self.count(|s| s.not_found += 1);
            return failure(
                StatusCode::NOT_FOUND,
                &format!("Workspace '{workspace}' was not found."),
            );
        }
        let request = match self.read_request(query, body) {
            Ok(request) => request,
            Err(message) => {
                self.count(|s| s.bad_requests += 1);
                return failure(StatusCode::BAD_REQUEST, &message);
            }
        };
        if lock(&self.faults).fail_call(&self.dice) {
            self.count(|s| s.faults_500 += 1);
            return failure(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
        }
        self.count(|s| {
            s.accepted_requests += 1;
            s.objects_received += request.objects.len() as u64;
        });
        let errors = self.store(&key, &request);
        self.count(|s| s.objects_rejected += errors.len() as u64);
        if errors.is_empty() {
            // "If all STIX objects are validated successfully, an HTTP 200 status is returned
            // with an empty response body."
            return StatusCode::OK.into_response();
        }
        let errors: Vec<Value> = errors
            .into_iter()
            .map(|(index, messages)| json!({"recordIndex": index, "errorMessages": messages}))
            .collect();
        (StatusCode::OK, axum::Json(json!({ "errors": errors }))).into_response()
    }

    /// The documented 429: the wait only in the body, in whole seconds (rounded up).
    fn throttled(&self, wait: Duration, now: Instant) -> Response {
        self.count(|s| s.throttled += 1);
        let secs = whole_seconds(wait);
        lock(&self.compliance).told(now, now + Duration::from_secs(secs));
        let body = ObjectWriter::new()
            .num("statusCode", 429)
            .str(
                "message",
                &format!("Rate limit is exceeded. Try again in {secs} seconds."),
            )
            .finish();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.config.retry_after_header {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    fn read_request(&self, query: Option<&str>, body: &[u8]) -> Result<UploadRequest, String> {
        let version = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.into_owned());
        match version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "The api-version '{other}' is not supported; use {API_VERSION}."
                ));
            }
            None => return Err("The api-version query parameter is required.".into()),
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| format!("The request body is not valid JSON: {e}."))?;
        let Value::Object(fields) = value else {
            return Err("The request body must be a JSON object.".into());
        };
        // Model binding is case-insensitive: the older page spells it `SourceSystem`.
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let source = match field("sourcesystem") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err("The sourcesystem field is required.".into()),
        };
        if source.trim().eq_ignore_ascii_case(RESTRICTED_SOURCE) {
            return Err(format!(
                "The sourcesystem value '{RESTRICTED_SOURCE}' is restricted."
            ));
        }
        let objects = match field("stixobjects") {
            Some(Value::Array(items)) => items.clone(),
            _ => return Err("The stixobjects field is required and must be an array.".into()),
        };
        if objects.is_empty() {
            return Err("The stixobjects array is empty.".into());
        }
        if objects.len() > self.config.max_objects {
            return Err(format!(
                "The request contains {} STIX objects; at most {} are allowed per request.",
                objects.len(),
                self.config.max_objects
            ));
        }
        Ok(UploadRequest { source, objects })
    }

    /// Validates and stores each object; returns the per-object errors by index.
    fn store(&self, workspace: &str, request: &UploadRequest) -> Vec<(usize, Vec<String>)> {
        let faults = lock(&self.faults).clone();
        let mut workspaces = lock(&self.workspaces);
        let Some(store) = workspaces.get_mut(workspace) else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for (index, object) in request.objects.iter().enumerate() {
            let mut messages = validate::check(object);
            let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
            if messages.is_empty() && faults.reject_object(id, &self.dice) {
                messages.push(format!(
                    "Error for Property=id: Rejected by ctiport-sim fault injection. Actual value: {id}."
                ));
            }
            if messages.is_empty() && store.put(object, &request.source) == Outcome::RevokedIsFinal
            {
                messages.push(format!(
                    "Error for Property=revoked: The object was revoked; no later version may be created. Actual value: {id}."
                ));
            }
            if !messages.is_empty() {
                errors.push((index, messages));
            }
        }
        errors
    }

    /// `GET /_sim/sentinel/{workspace}/objects`.
    pub fn inspect(&self, workspace: &str) -> Option<Value> {
        let workspaces = lock(&self.workspaces);
        let store = workspaces.get(&workspace.to_ascii_lowercase())?;
        let objects: Vec<&store::Stored> = store.objects().collect();
        let revoked = objects.iter().filter(|o| o.revoked).count();
        Some(json!({
            "workspace": workspace,
            "count": objects.len(),
            "revoked": revoked,
            "outcomes": store.counts,
            "objects": objects,
        }))
    }

    /// `GET /_sim/sentinel/stats`.
    pub fn stats(&self) -> Value {
        json!({
            "stats": *lock(&self.stats),
            "faults": *lock(&self.faults),
            "workspaces": self.config.workspaces,
        })
    }

    /// `POST /_sim/sentinel/faults`: replaces the fault settings.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// `POST /_sim/sentinel/reset`: empty workspaces, counters, windows and fault settings as
    /// at start.
    pub fn reset(&self) {
        for store in lock(&self.workspaces).values_mut() {
            *store = Workspace::default();
        }
        *lock(&self.stats) = Stats::default();
        lock(&self.window).clear();
        lock(&self.compliance).clear();
        *lock(&self.faults) = self.config.faults.clone();
    }
}

struct UploadRequest {
    source: String,
    objects: Vec<Value>,
}
