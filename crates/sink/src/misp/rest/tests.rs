//! The sink against a small in-process MISP that follows the reference's REST behaviour
//! (`misp.md` §3.4, §6.2: key check, HEAD/view, add with 404-and-Location for an existing uuid,
//! edit with the timestamp rule and the merge by uuid) and can misbehave on purpose: 503s, an
//! event created by another writer between HEAD and add, a concurrent edit that makes the first
//! edit "not newer", attributes silently dropped, tags not attached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ctiport_model::record::{Mapped, ObservableType};
use serde_json::{Value, json};

use ctiport_net::{HttpOptions, Secret};

use super::config::{MISP, MispTarget};
use super::sink::MispRestSink;
use crate::fixtures::{self, Received};
use crate::misp::config::{Distribution, MispOptions};
use crate::misp::uuid::event_uuid;
use crate::{Sink, SinkError, SinkReport};

const KEY: &str = "0123456789abcdefghijABCDEFGHIJ0123456789";

#[derive(Default)]
struct Mock {
    /// The first requests answered 503.
    unavailable: u32,
    /// Values containing this are dropped silently, as MISP drops an invalid attribute.
    drop_marker: Option<&'static str>,
    /// Tags are not attached (a role without perm_tag_editor, unknown tags).
    no_tags: bool,
    perm_add: bool,
    /// An event with this uuid is created by "another writer" right after the sink's HEAD.
    race_uuid: Option<String>,
    /// The first edit of this uuid finds the event edited meanwhile (timestamp bumped).
    interfere_uuid: Option<String>,
    /// Adding this uuid fails MISP's validation (a save failure, HTTP 403).
    invalid_uuid: Option<String>,
    state: Mutex<MockState>,
}

#[derive(Default)]
struct MockState {
    requests: u32,
    events: HashMap<String, Value>,
    log: Vec<String>,
    interfered: bool,
    wrong_headers: Vec<String>,
}

impl Mock {
    fn new() -> Self {
        Mock {
            perm_add: true,
            ..Mock::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn api_error(status: StatusCode, message: &str, url: &str) -> Response {
    json_response(
        status,
        json!({"name": message, "message": message, "url": url}),
    )
}

fn number(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// MISP's `_add`: attributes captured one by one, invalid ones dropped silently.
fn store_new(mock: &Mock, mut event: Value) -> Value {
    let attributes: Vec<Value> = event["Attribute"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| {
            mock.drop_marker
                .is_none_or(|m| !a["value"].as_str().unwrap_or_default().contains(m))
        })
        .collect();
    event["Attribute"] = Value::Array(attributes);
    if mock.no_tags {
        event["Tag"] = json!([]);
    }
    event["id"] = json!("1");
    event
}

/// MISP's `_edit` merge: fields present overwrite, attributes and reports matched by uuid and
/// updated only when newer, nothing removed implicitly, tags attached or detached.
fn merge(mock: &Mock, stored: &mut Value, body: &Value) {
    for field in [
        "info",
        "date",
        "threat_level_id",
        "analysis",
        "distribution",
        "extends_uuid",
    ] {
        if let Some(value) = body.get(field) {
            stored[field] = value.clone();
        }
    }
    stored["timestamp"] = body["timestamp"].clone();
    for (list, drop) in [("Attribute", true), ("EventReport", false)] {
        for incoming in body[list].as_array().cloned().unwrap_or_default() {
            let dropped = drop
                && mock
                    .drop_marker
                    .is_some_and(|m| incoming["value"].as_str().unwrap_or_default().contains(m));
            let items = stored[list].as_array_mut();
            let Some(items) = items else {
                stored[list] = json!([incoming]);
                continue;
            };
            match items.iter_mut().find(|s| s["uuid"] == incoming["uuid"]) {
                Some(s) if number(&incoming["timestamp"]) > number(&s["timestamp"]) => {
                    *s = incoming;
                }
                Some(_) => {}
                None if dropped => {}
                None => items.push(incoming),
            }
        }
    }
    if !mock.no_tags {
        for tag in body["Tag"].as_array().cloned().unwrap_or_default() {
            let tags = stored["Tag"].as_array_mut();
            let Some(tags) = tags else { continue };
            if tag["deleted"] == json!(true) {
                tags.retain(|t| t["name"] != tag["name"]);
            } else if !tags.iter().any(|t| t["name"] == tag["name"]) {
                tags.push(json!({"name": tag["name"]}));
            }
        }
    }
}

async fn serve(State(mock): State<Arc<Mock>>, request: Request) -> Response {
    let request = Received::read(request).await;
    let header = |name: &str| request.header(name).to_owned();
    let (method, path) = (request.method.clone(), request.path.clone());
    let mut state = mock.state();
    state.requests += 1;
    state.log.push(format!("{method} {path}"));
    if state.requests <= mock.unavailable {
        return api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service unavailable",
            &path,
        );
    }
    if header("authorization") != KEY {
        return api_error(
            StatusCode::FORBIDDEN,
            "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header.",
            &path,
        );
    }
    if header("accept") != "application/json" {
        state
            .wrong_headers
            .push(format!("accept {}", header("accept")));
    }
    if method == Method::POST && header("content-type") != "application/json" {
        state
            .wrong_headers
            .push(format!("content-type {}", header("content-type")));
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let event_body = body.get("Event").cloned().unwrap_or_else(|| body.clone());
    let tail = |prefix: &str| path.strip_prefix(prefix).map(str::to_owned);
    if path == "/users/view/me" {
        return json_response(
            StatusCode::OK,
            json!({"User": {"email": "push@example.org"}, "Organisation": {"name": "Example"},
                   "Role": {"name": "Mock", "perm_add": mock.perm_add, "perm_modify": true,
                            "perm_modify_org": true, "perm_tagger": true,
                            "perm_tag_editor": !mock.no_tags}}),
        );
    }
    if let Some(uuid) = tail("/events/view/") {
        let uuid = uuid.trim_end_matches('/');
        if method == Method::HEAD {
            let found = state.events.contains_key(uuid);
            if mock.race_uuid.as_deref() == Some(uuid) && !found {
                // Another writer adds the event right after this answer.
                let mut copy = json!({"uuid": uuid, "info": "created meanwhile", "timestamp": "1",
                    "Attribute": [], "Tag": [], "EventReport": []});
                copy["id"] = json!("7");
                state.events.insert(uuid.to_owned(), copy);
            }
            return if found {
                StatusCode::OK.into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            };
        }
        return match state.events.get(uuid) {
            Some(event) => json_response(StatusCode::OK, json!({"Event": event})),
            None => api_error(StatusCode::NOT_FOUND, "Invalid event", &path),
        };
    }
    if path == "/events/add" && method == Method::POST {
        if !mock.perm_add {
            return api_error(
                StatusCode::FORBIDDEN,
                "You do not have permission to use this functionality.",
                &path,
            );
        }
        let uuid = event_body["uuid"].as_str().unwrap_or_default().to_owned();
        if mock.invalid_uuid.as_deref() == Some(uuid.as_str()) {
            return json_response(
                StatusCode::FORBIDDEN,
                json!({"saved": false, "name": "Could not add Event", "message": "Could not add Event",
                       "url": "/events/add", "errors": {"Event": {"info": ["Info cannot be empty."]}}}),
            );
        }
        if let Some(existing) = state.events.get(&uuid) {
            let location = format!(
                "http://misp.invalid/events/{}",
                existing["id"].as_str().unwrap_or("1")
            );
            let message = "Event already exists, if you would like to edit it, use the url in the location header.";
            return (
                StatusCode::NOT_FOUND,
                [
                    ("location", location.as_str()),
                    ("content-type", "application/json"),
                ],
                json!({"name": message, "message": message, "url": "/events/add"}).to_string(),
            )
                .into_response();
        }
        let stored = store_new(&mock, event_body);
        state.events.insert(uuid, stored.clone());
        return json_response(StatusCode::OK, json!({"Event": stored}));
    }
    if let Some(uuid) = tail("/events/edit/") {
        if mock.interfere_uuid.as_deref() == Some(uuid.as_str()) && !state.interfered {
            state.interfered = true;
            if let Some(event) = state.events.get_mut(&uuid) {
                let bumped = number(&event["timestamp"]) + 1000;
                event["timestamp"] = json!(bumped.to_string());
            }
        }
        let Some(stored) = state.events.get(&uuid).cloned() else {
            return api_error(StatusCode::NOT_FOUND, "Invalid event", &path);
        };
        if number(&event_body["timestamp"]) <= number(&stored["timestamp"]) {
            return json_response(
                StatusCode::FORBIDDEN,
                json!({"saved": false, "name": "Could not edit Event", "message": "Could not edit Event",
                       "url": path, "errors": "Event could not be saved: Event in the request not newer than the local copy.",
                       "id": stored["id"]}),
            );
        }
        let mut next = stored;
        merge(&mock, &mut next, &event_body);
        state.events.insert(uuid, next.clone());
        return json_response(StatusCode::OK, json!({"Event": next}));
    }
    api_error(StatusCode::NOT_FOUND, "Not found", &path)
}

async fn start(mock: Mock) -> (Arc<Mock>, String) {
    let mock = Arc::new(mock);
    let app = Router::new().fallback(serve).with_state(mock.clone());
    (mock, fixtures::serve(app).await)
}

fn options(max_attributes: usize) -> MispOptions {
    fixtures::misp_options(Distribution::Organisation, max_attributes)
}

fn profile(id: &str, summary: &str) -> Mapped {
    fixtures::summarized(id, &format!("Actor {id}"), summary)
}

fn indicator(profile_id: &str, n: u32, value: &str) -> Mapped {
    fixtures::indicator(profile_id, &format!("i{n}"), ObservableType::Domain, value)
}

fn records(profile_id: &str, summary: &str, values: &[&str]) -> Vec<Mapped> {
    let mut records = vec![profile(profile_id, summary)];
    for (n, value) in values.iter().enumerate() {
        records.push(indicator(profile_id, n as u32, value));
    }
    records
}

fn http(max_attempts: u32) -> HttpOptions {
    HttpOptions {
        allow_http: false,
        ca_file: None,
        request_timeout: MISP.request_timeout,
        max_attempts,
    }
}

/// Runs a sink over `records` on a blocking thread, as the pipeline does.
async fn push(
    url: &str,
    records: Vec<Mapped>,
    max_attributes: usize,
) -> Result<SinkReport, SinkError> {
    let config = MispTarget::new(url, &http(3), Some(Secret::new(KEY)))
        .unwrap_or_else(|e| panic!("config: {e}"));
    tokio::task::spawn_blocking(move || {
        let mut sink: Box<dyn Sink> = Box::new(MispRestSink::new(config, options(max_attributes))?);
        sink.begin(&[])?;
        for record in &records {
            sink.write(record)?;
        }
        sink.finish()
    })
    .await
    .unwrap_or_else(|e| panic!("sink thread: {e}"))
}

fn live_values(mock: &Mock, uuid: &str) -> Vec<String> {
    let state = mock.state();
    let mut values: Vec<String> = state.events[uuid]["Attribute"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|a| a["deleted"] != json!(true))
        .map(|a| a["value"].as_str().unwrap_or_default().to_owned())
        .collect();
    values.sort();
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_then_leaves_an_unchanged_event_alone_then_retracts_what_left() {
    let (mock, url) = start(Mock::new()).await;
    let first = records("p1", "old", &["a.example", "b.example", "c.example"]);
    let report = push(&url, first.clone(), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (3, 0));
    let uuid = event_uuid("p1", 1).to_string();
    assert_eq!(
        live_values(&mock, &uuid),
        ["a.example", "b.example", "c.example"]
    );
    let stamp = number(&mock.state().events[&uuid]["timestamp"]);
    assert!(
        mock.state().wrong_headers.is_empty(),
        "{:?}",
        mock.state().wrong_headers
    );

    // The same input: no edit at all.
    let edits = |mock: &Mock| {
        mock.state()
            .log
            .iter()
            .filter(|l| l.contains("/events/edit/"))
            .count()
    };
    let report = push(&url, first, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (3, 0));
    assert_eq!(edits(&mock), 0);

    // b left, d arrived, the summary changed: one edit, newer, with b deleted.
    let second = records("p1", "new", &["a.example", "c.example", "d.example"]);
    let report = push(&url, second, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (3, 0));
    assert_eq!(edits(&mock), 1);
    assert_eq!(
        live_values(&mock, &uuid),
        ["a.example", "c.example", "d.example"]
    );
    let state = mock.state();
    let event = &state.events[&uuid];
    assert!(number(&event["timestamp"]) > stamp);
    let b = event["Attribute"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["value"] == "b.example"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(b["deleted"], json!(true));
    assert!(
        event["EventReport"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("new")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_503_and_handles_a_concurrent_writer() {
    let uuid = event_uuid("p2", 1).to_string();
    let (mock, url) = start(Mock {
        unavailable: 2,
        race_uuid: Some(uuid.clone()),
        ..Mock::new()
    })
    .await;
    // HEAD says absent, the add finds it created meanwhile (404 + Location): edited instead.
    let report = push(&url, records("p2", "s", &["a.example"]), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (1, 0));
    assert_eq!(live_values(&mock, &uuid), ["a.example"]);
    let log = mock.state().log.join("\n");
    assert!(
        log.contains("POST /events/add") && log.contains("POST /events/edit/"),
        "{log}"
    );

    // An edit refused as not newer (someone edited in between): read again, bump, succeed.
    let (mock, url) = start(Mock {
        interfere_uuid: Some(uuid.clone()),
        ..Mock::new()
    })
    .await;
    assert!(
        push(&url, records("p2", "s", &["a.example"]), 100)
            .await
            .is_ok()
    );
    let report = push(&url, records("p2", "s", &["b.example"]), 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (1, 0));
    assert_eq!(live_values(&mock, &uuid), ["b.example"]);
    let edits = mock
        .state()
        .log
        .iter()
        .filter(|l| l.contains("/events/edit/"))
        .count();
    assert_eq!(edits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silently_dropped_attributes_and_missing_tags_are_failures() {
    let (_, url) = start(Mock {
        drop_marker: Some("drop"),
        no_tags: true,
        ..Mock::new()
    })
    .await;
    let report = push(
        &url,
        records("p3", "s", &["a.example", "drop.example"]),
        100,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.objects, 1);
    assert_eq!(report.failed, 2, "{:?}", report.failures);
    let text = report.failures.join("\n");
    assert!(text.contains("'drop.example' was not stored"), "{text}");
    assert!(text.contains("perm_tag_editor"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_that_shrank_retires_its_extra_extension_events() {
    let (mock, url) = start(Mock::new()).await;
    let big = records(
        "p4",
        "s",
        &[
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
        ],
    );
    let report = push(&url, big, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.objects, 5);
    assert_eq!(mock.state().events.len(), 3);
    let small = records("p4", "s", &["a.example", "b.example", "c.example"]);
    let report = push(&url, small, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (3, 0));
    assert_eq!(
        live_values(&mock, &event_uuid("p4", 2).to_string()),
        ["c.example"]
    );
    assert!(live_values(&mock, &event_uuid("p4", 3).to_string()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_profile_has_every_event_retired_and_comes_back_when_listed_again() {
    let (mock, url) = start(Mock::new()).await;
    let values = ["a.example", "b.example", "c.example"];
    let mut all = records("gone", "s", &values);
    all.extend(records("kept", "s", &["k.example"]));
    let report = push(&url, all.clone(), 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (4, 0));
    let parts = [
        event_uuid("gone", 1).to_string(),
        event_uuid("gone", 2).to_string(),
    ];
    let before: Vec<Value> = parts
        .iter()
        .map(|uuid| mock.state().events[uuid].clone())
        .collect();
    let kept = event_uuid("kept", 1).to_string();
    let kept_before = mock.state().events[&kept].clone();

    // "gone" is no longer listed: the state store revokes its memberships after the records.
    let mut second = records("kept", "s", &["k.example"]);
    second.extend(
        values
            .iter()
            .map(|v| crate::misp::builder::revoked_membership("gone", v)),
    );
    let report = push(&url, second.clone(), 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.objects, report.failed),
        (1, 0),
        "{:?}",
        report.failures
    );
    for (uuid, old) in parts.iter().zip(&before) {
        let state = mock.state();
        let event = &state.events[uuid];
        let attributes = event["Attribute"].as_array().cloned().unwrap_or_default();
        assert!(!attributes.is_empty());
        assert!(
            attributes.iter().all(|a| a["deleted"] == json!(true)),
            "{event}"
        );
        assert!(number(&event["timestamp"]) > number(&old["timestamp"]));
        for field in ["info", "date", "extends_uuid", "Tag", "EventReport"] {
            assert_eq!(event[field], old[field], "{field}");
        }
    }
    assert_eq!(mock.state().events[&kept], kept_before);
    let edited: Vec<String> = mock
        .state()
        .log
        .iter()
        .filter(|l| l.contains("/events/edit/"))
        .cloned()
        .collect();
    assert_eq!(
        edited,
        parts
            .iter()
            .map(|u| format!("POST /events/edit/{u}"))
            .collect::<Vec<_>>()
    );

    // Revoked again (a lagging sink's backlog): nothing left to retract, nothing sent.
    let requests = mock.state().log.len();
    push(&url, second, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !mock.state().log[requests..]
            .iter()
            .any(|l| l.contains("/events/edit/") || l.contains("/events/add"))
    );

    // Listed again: the attributes are live once more.
    let report = push(&url, all, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.objects, report.failed),
        (4, 0),
        "{:?}",
        report.failures
    );
    assert_eq!(live_values(&mock, &parts[0]), ["a.example", "b.example"]);
    assert_eq!(live_values(&mock, &parts[1]), ["c.example"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_role_stops_before_anything_is_pushed() {
    let (mock, url) = start(Mock::new()).await;
    let config = MispTarget::new(
        &url,
        &http(6),
        Some(Secret::new("X123456789abcdefghijABCDEFGHIJ012345678X")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let begun = tokio::task::spawn_blocking(move || {
        let mut sink = MispRestSink::new(config, options(10))?;
        sink.begin(&[])
    })
    .await;
    let error = fixtures::error(begun.unwrap_or_else(|e| panic!("{e}")));
    fixtures::assert_names_without(&error, "refused the API key in MISP_KEY", "X123456789");
    assert!(mock.state().events.is_empty());

    let (no_add, url) = start(Mock {
        perm_add: false,
        ..Mock::new()
    })
    .await;
    let error = fixtures::error(push(&url, records("p5", "s", &["a.example"]), 10).await);
    assert!(error.contains("perm_add"), "{error}");
    assert!(!no_add.state().log.iter().any(|l| l.contains("/events/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_reported_and_the_others_still_go() {
    let (mock, url) = start(Mock {
        invalid_uuid: Some(event_uuid("p6", 1).to_string()),
        ..Mock::new()
    })
    .await;
    let mut all = records("p6", "s", &["a.example", "b.example"]);
    all.extend(records("p7", "s", &["c.example"]));
    let report = push(&url, all, 100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.objects, report.failed), (1, 2));
    let text = report.failures.join("\n");
    assert!(
        text.contains("refused: Could not add Event: Event.info: Info cannot be empty."),
        "{text}"
    );
    assert_eq!(
        live_values(&mock, &event_uuid("p7", 1).to_string()),
        ["c.example"]
    );
}
