//! The sink against a small in-process TAXII server that behaves like medallion 3.0.0 (duplicates
//! reported as failures, exact media types, Basic auth) and can also misbehave on purpose:
//! 413 below its announced limit, 429 with `Retry-After`, `pending` statuses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ctiport_model::stix::EncodedObject;
use serde_json::{Value, json};

use ctiport_net::{Authorization, HttpOptions, Secret};

use super::config::{TAXII, TaxiiTarget};
use super::sink::TaxiiSink;
use crate::fixtures::{self, Received};
use crate::{Sink, SinkError, SinkReport};

const MEDIA: &str = "application/taxii+json;version=2.1";
const GOOD_AUTH: &str = "Basic YWRtaW46UGFzc3dvcmQw"; // admin:Password0

struct Mock {
    max_content_length: u64,
    /// Bodies above this get 413 although the API root announced more.
    reject_over: usize,
    /// The first POSTs answered 429 with `Retry-After: 0`.
    throttled_posts: u32,
    /// Statuses are `pending` until polled once.
    pending: bool,
    can_write: bool,
    can_read: bool,
    state: Mutex<MockState>,
}

#[derive(Default)]
struct MockState {
    objects: Vec<Value>,
    statuses: HashMap<String, Value>,
    posts: u32,
    accepted_posts: u32,
    polls: u32,
    wrong_headers: Vec<String>,
}

impl Mock {
    fn new() -> Self {
        Mock {
            max_content_length: 4_000,
            reject_over: usize::MAX,
            throttled_posts: 0,
            pending: false,
            can_write: true,
            can_read: true,
            state: Mutex::new(MockState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn taxii(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", MEDIA)], body.to_string()).into_response()
}

async fn serve(State(mock): State<Arc<Mock>>, request: Request) -> Response {
    let request = Received::read(request).await;
    let header = |name: &str| request.header(name).to_owned();
    let body = &request.body;
    if header("authorization") != GOOD_AUTH {
        return (StatusCode::UNAUTHORIZED, "Unauthorized Access").into_response();
    }
    if header("accept") != MEDIA {
        mock.state()
            .wrong_headers
            .push(format!("accept {}", header("accept")));
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    let query = &request.query;
    match (request.method.clone(), request.path.as_str()) {
        (Method::GET, "/api1/") => taxii(
            StatusCode::OK,
            json!({"title": "mock", "versions": [MEDIA], "max_content_length": mock.max_content_length}),
        ),
        (Method::GET, "/api1/collections/c1/") => taxii(
            StatusCode::OK,
            json!({"id": "c1", "title": "writable", "can_read": mock.can_read,
                   "can_write": mock.can_write, "media_types": ["application/stix+json;version=2.1"]}),
        ),
        (Method::POST, "/api1/collections/c1/objects/") => {
            if header("content-type") != MEDIA {
                mock.state()
                    .wrong_headers
                    .push(format!("content-type {}", header("content-type")));
                return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
            }
            let mut state = mock.state();
            state.posts += 1;
            if state.posts <= mock.throttled_posts {
                return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")]).into_response();
            }
            if !mock.can_write {
                return taxii(
                    StatusCode::FORBIDDEN,
                    json!({"title": "ProcessingError",
                    "description": "Forbidden to write collection 'c1'."}),
                );
            }
            if body.len() as u64 > mock.max_content_length || body.len() > mock.reject_over {
                return StatusCode::PAYLOAD_TOO_LARGE.into_response();
            }
            let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            state.accepted_posts += 1;
            let (mut successes, mut failures) = (Vec::new(), Vec::new());
            for object in envelope["objects"].as_array().cloned().unwrap_or_default() {
                let present = state.objects.iter().any(|o| {
                    o["id"] == object["id"]
                        && (object.get("modified").is_none() || o["modified"] == object["modified"])
                });
                let detail = json!({"id": object["id"], "version": object["modified"]});
                if present {
                    let mut d = detail;
                    d["message"] = "Unable to process object".into();
                    failures.push(d);
                } else {
                    state.objects.push(object);
                    successes.push(detail);
                }
            }
            let id = format!("status-{}", state.posts);
            let complete = json!({"id": id, "status": "complete",
                "total_count": successes.len() + failures.len(), "success_count": successes.len(),
                "failure_count": failures.len(), "pending_count": 0,
                "successes": successes, "failures": failures});
            state.statuses.insert(id.clone(), complete.clone());
            if mock.pending {
                let total = complete["total_count"].clone();
                taxii(
                    StatusCode::ACCEPTED,
                    json!({"id": id, "status": "pending",
                    "total_count": total, "success_count": 0, "failure_count": 0,
                    "pending_count": total}),
                )
            } else {
                taxii(StatusCode::ACCEPTED, complete)
            }
        }
        (Method::GET, path) if path.starts_with("/api1/status/") => {
            let id = path
                .trim_start_matches("/api1/status/")
                .trim_end_matches('/');
            let mut state = mock.state();
            state.polls += 1;
            match state.statuses.get(id) {
                Some(status) => taxii(StatusCode::OK, status.clone()),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        (Method::GET, "/api1/collections/c1/objects/") => {
            let ids: Vec<&str> = query
                .get("match[id]")
                .map(|s| s.split(',').collect())
                .unwrap_or_default();
            let state = mock.state();
            let found: Vec<Value> = state
                .objects
                .iter()
                .filter(|o| ids.iter().any(|id| o["id"] == *id))
                .cloned()
                .collect();
            taxii(StatusCode::OK, json!({"objects": found, "more": false}))
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start(mock: Mock) -> (Arc<Mock>, String) {
    let mock = Arc::new(mock);
    let app = Router::new().fallback(serve).with_state(mock.clone());
    let url = fixtures::serve(app).await;
    (mock, format!("{url}api1/collections/c1/"))
}

fn object(n: usize, modified: &str) -> EncodedObject {
    let id = format!("indicator--00000000-0000-4000-8000-{n:012}");
    let json = json!({"type": "indicator", "spec_version": "2.1", "id": id,
        "created": "2024-01-01T00:00:00.000Z", "modified": modified,
        "name": format!("value {n} {}", "x".repeat(150)), "pattern_type": "stix",
        "pattern": "[domain-name:value = 'example.com']", "valid_from": "2024-01-01T00:00:00.000Z"})
    .to_string();
    EncodedObject {
        id: id.into(),
        object_type: "indicator".into(),
        json: json.into(),
        references: Arc::from(Vec::<String>::new()),
    }
}

fn objects(count: usize) -> Vec<EncodedObject> {
    (0..count)
        .map(|n| object(n, "2024-01-01T00:00:00.000Z"))
        .collect()
}

fn credentials(password: &str) -> Option<Authorization> {
    Some(Authorization::Basic {
        username: "admin".into(),
        password: Secret::new(password),
    })
}

/// Runs a sink over `preamble` (the simplest way to hand it objects) on a blocking thread, as
/// the pipeline does.
async fn push(
    url: &str,
    preamble: Vec<EncodedObject>,
    password: &str,
) -> Result<SinkReport, SinkError> {
    let http = HttpOptions {
        allow_http: false,
        ca_file: None,
        request_timeout: TAXII.request_timeout,
        max_attempts: 3,
    };
    let target = TaxiiTarget::new(url, &http, Duration::from_secs(20), credentials(password))
        .unwrap_or_else(|e| panic!("config: {e}"));
    tokio::task::spawn_blocking(move || {
        let mut sink: Box<dyn Sink> = Box::new(TaxiiSink::new(target));
        sink.begin(&preamble)?;
        sink.finish()
    })
    .await
    .unwrap_or_else(|e| panic!("sink thread: {e}"))
}

fn stored_ids(mock: &Mock) -> Vec<String> {
    let mut ids: Vec<String> = mock
        .state()
        .objects
        .iter()
        .filter_map(|o| o["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

fn ids_of(objects: &[EncodedObject]) -> Vec<String> {
    let mut ids: Vec<String> = objects.iter().map(|o| o.id.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_every_object_once_in_envelopes_under_the_limit_and_repushes_idempotently() {
    let (mock, url) = start(Mock::new()).await;
    let sent = objects(60);
    let report = push(&url, sent.clone(), "Password0").await;
    assert_eq!(report.map(|r| r.objects).ok(), Some(60));
    assert_eq!(stored_ids(&mock), ids_of(&sent));
    let posts = mock.state().accepted_posts;
    assert!(posts >= 3, "expected several envelopes, got {posts}");
    assert!(mock.state().wrong_headers.is_empty());

    // The same objects again: medallion-style failures, recognized as already present.
    let again = push(&url, sent.clone(), "Password0").await;
    assert_eq!(again.map(|r| r.objects).ok(), Some(60));
    assert_eq!(mock.state().objects.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_object_with_the_same_version_is_a_failure() {
    let (_, url) = start(Mock::new()).await;
    let sent = objects(3);
    assert!(push(&url, sent.clone(), "Password0").await.is_ok());
    let mut changed = sent.clone();
    let mut value: Value = serde_json::from_str(&changed[1].json).unwrap_or_default();
    value["name"] = "changed".into();
    changed[1].json = value.to_string().into();
    let error = fixtures::error(push(&url, changed.clone(), "Password0").await);
    assert!(error.contains(&*changed[1].id), "{error}");
    assert!(error.contains("same id and modified"), "{error}");
    assert!(error.contains("1 object(s) were not stored"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_envelopes_on_413_and_retries_429() {
    let (mock, url) = start(Mock {
        reject_over: 1_200,
        throttled_posts: 2,
        ..Mock::new()
    })
    .await;
    let sent = objects(25);
    let report = push(&url, sent.clone(), "Password0").await;
    assert_eq!(report.map(|r| r.objects).ok(), Some(25));
    assert_eq!(stored_ids(&mock), ids_of(&sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_pending_statuses_until_complete() {
    let (mock, url) = start(Mock {
        pending: true,
        ..Mock::new()
    })
    .await;
    let sent = objects(30);
    let report = push(&url, sent.clone(), "Password0").await;
    assert_eq!(report.map(|r| r.objects).ok(), Some(30));
    let state = mock.state();
    assert!(state.polls >= state.accepted_posts, "{} polls", state.polls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_their_cause_and_push_nothing() {
    let (mock, url) = start(Mock::new()).await;
    let error = fixtures::error(push(&url, objects(3), "wrong").await);
    assert!(error.contains("authentication failed"), "{error}");
    fixtures::assert_names_without(&error, "TAXII_PASSWORD", "wrong");
    assert!(mock.state().objects.is_empty());

    let (read_only, url) = start(Mock {
        can_write: false,
        ..Mock::new()
    })
    .await;
    let error = fixtures::error(push(&url, objects(3), "Password0").await);
    assert!(error.contains("can_write: false"), "{error}");
    assert_eq!(read_only.state().posts, 0);

    let wrong_collection = url.replace("/c1/", "/nope/");
    let error = fixtures::error(push(&wrong_collection, objects(1), "Password0").await);
    assert!(error.contains("HTTP 404"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_larger_than_the_server_takes_is_a_clear_error() {
    let (_, url) = start(Mock::new()).await;
    let mut sent = objects(2);
    let mut huge: Value = serde_json::from_str(&sent[1].json).unwrap_or_default();
    huge["description"] = "y".repeat(10_000).into();
    sent[1].json = huge.to_string().into();
    let error = fixtures::error(push(&url, sent.clone(), "Password0").await);
    assert!(
        error.contains(&*sent[1].id) && error.contains("max_content_length"),
        "{error}"
    );
}
