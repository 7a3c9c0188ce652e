//! End-to-end checks of the simulator over real HTTP: the server runs in-process on an
//! ephemeral port and is driven with reqwest, the client library ctiport itself uses.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ctiport_model::pct::pct;
use ctiport_sim::data::{Store, load_dump};
use ctiport_sim::faults::{FaultKind, FaultPlan};
use ctiport_sim::generate::{Spec, generate_store};
use ctiport_sim::server::{Mode, Running, ServeConfig, start};
use ctiport_sim::throttle::RetryAfterFormat;
use reqwest::{Client, StatusCode};
use serde_json::Value;

const TI: &str = "v1.0/security/threatIntelligence";
const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn adversarial() -> Store {
    load_dump(&repo().join("tests/fixtures/adversarial")).expect("fixture")
}

fn generated() -> Store {
    generate_store(Spec {
        profiles: 9,
        indicators: 700,
        seed: 11,
    })
    .expect("generate")
}

async fn token_response(client: &Client, sim: &Running, secret: &str) -> reqwest::Response {
    let body = format!(
        "client_id=sim-client&client_secret={secret}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials"
    );
    client
        .post(format!("{}/sim-tenant/oauth2/v2.0/token", sim.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token endpoint reachable")
}

async fn fetch_token(client: &Client, sim: &Running) -> String {
    let response = token_response(client, sim, "sim-secret").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("token json");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64());
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

async fn get(client: &Client, url: &str, token: &str) -> reqwest::Response {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn stats(client: &Client, sim: &Running) -> Value {
    client
        .get(format!("{}/_sim/stats", sim.url))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

/// Follows nextLinks from `first` until there is none; returns every element, and checks each
/// element arrives byte for byte as `expected` holds it.
async fn walk(client: &Client, first: String, token: &str) -> (Vec<Value>, Vec<String>) {
    let mut next = Some(first);
    let (mut items, mut bodies) = (Vec::new(), Vec::new());
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        assert!(pages < 10_000, "paging never ends");
        let response = get(client, &url, token).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let text = response.text().await.expect("body");
        let page: Value = serde_json::from_str(&text).expect("page json");
        assert!(page["@odata.context"].is_string());
        items.extend(
            page["value"]
                .as_array()
                .expect("value array")
                .iter()
                .cloned(),
        );
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(link) = &next {
            assert!(
                link.starts_with(&format!("{}/", first_origin(&url))),
                "absolute: {link}"
            );
        }
        bodies.push(text);
    }
    (items, bodies)
}

fn first_origin(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("url");
    parsed.origin().ascii_serialization()
}

fn record_id(v: &Value) -> Option<String> {
    let inner = match (v.get("id"), v.get("value")) {
        (None, Some(inner @ Value::Object(_))) => inner,
        _ => v,
    };
    match inner.get("id")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

async fn check_paging(store: Store, page_size: u64, indicator_top: u64) {
    let expected_profiles: Vec<String> = store
        .profiles()
        .iter()
        .map(|p| p.entry.raw.get().to_owned())
        .collect();
    let expected_indicators: Vec<(String, Vec<String>)> = store
        .profiles()
        .iter()
        .filter_map(|p| p.entry.id.as_deref())
        .map(|id| {
            let list = store.indicators_of(id).unwrap_or_default();
            (
                id.to_owned(),
                list.iter().map(|i| i.entry.raw.get().to_owned()).collect(),
            )
        })
        .collect();
    let sim = start(
        ServeConfig {
            page_size,
            ..ServeConfig::default()
        },
        store,
    )
    .await
    .expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;

    let (profiles, bodies) = walk(
        &client,
        format!("{}/{TI}/intelProfiles?$count=true", sim.url),
        &token,
    )
    .await;
    let got: Vec<Value> = profiles;
    let want: Vec<Value> = expected_profiles
        .iter()
        .map(|r| serde_json::from_str(r).expect("json"))
        .collect();
    assert_eq!(
        got, want,
        "the union of the pages is the dump, in order, without duplicates"
    );
    let all = bodies.concat();
    for raw in &expected_profiles {
        assert!(all.contains(raw.as_str()), "served verbatim: {raw}");
    }

    for (id, raws) in expected_indicators {
        let url = format!(
            "{}/{TI}/intelProfiles/{}/indicators?$top={indicator_top}&$count=true",
            sim.url,
            pct(&id)
        );
        let (items, bodies) = walk(&client, url, &token).await;
        let want: Vec<Value> = raws
            .iter()
            .map(|r| serde_json::from_str(r).expect("json"))
            .collect();
        assert_eq!(items, want, "indicators of {id}");
        let all = bodies.concat();
        for raw in &raws {
            assert!(all.contains(raw.as_str()), "served verbatim: {raw}");
        }
        if let Some(first) = bodies.first() {
            let first: Value = serde_json::from_str(first).expect("json");
            assert_eq!(first["@odata.count"].as_u64(), Some(raws.len() as u64));
        }
    }
    let s = stats(&client, &sim).await;
    assert!(s["served_pages"].as_u64().unwrap_or(0) > 2);
    assert_eq!(s["faults"]["503"], 0);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn paging_serves_the_adversarial_dump_exactly() {
    check_paging(adversarial(), 2, 3).await;
}

#[tokio::test]
async fn paging_serves_generated_data_exactly() {
    let store = generated();
    let ids: HashSet<String> = store
        .profiles()
        .iter()
        .filter_map(|p| record_id(&serde_json::from_str(p.entry.raw.get()).expect("json")))
        .collect();
    assert_eq!(ids.len(), 9);
    check_paging(store, 4, 17).await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_fractional_retry_after() {
    let config = ServeConfig {
        rate: Some(2.0),
        burst: Some(1.0),
        retry_after_format: RetryAfterFormat::Fractional,
        ..ServeConfig::default()
    };
    let sim = start(config, generated()).await.expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);

    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let throttled = get(&client, &url, &token).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = throttled
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .expect("Retry-After")
        .to_owned();
    let (whole, millis) = retry_after.split_once('.').expect("fractional");
    assert!(!whole.is_empty() && millis.len() == 3, "{retry_after}");
    let wait: f64 = retry_after.parse().expect("seconds");
    assert!(wait > 0.0 && wait <= 0.5, "honest wait for 2 rps: {wait}");
    let body: Value = throttled.json().await.expect("json");
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(body["error"]["innerError"]["status"], "429");

    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let s = stats(&client, &sim).await;
    assert_eq!(s["throttled"], 1);
    assert_eq!(s["early_requests"], 0, "obeying Retry-After is not early");

    // Now disobey: ask again well inside the promised wait.
    assert_eq!(
        get(&client, &url, &token).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    get(&client, &url, &token).await;
    let s = stats(&client, &sim).await;
    assert_eq!(s["early_requests"], 1);
    // The token endpoint is not rate limited.
    for _ in 0..5 {
        fetch_token(&client, &sim).await;
    }
    sim.stop().await.expect("stop");
}

fn whole_seconds(v: &str) -> bool {
    v.parse::<u64>().is_ok_and(|s| s >= 1)
}

fn http_date(v: &str) -> bool {
    v.ends_with(" GMT") && v.len() == 29
}

#[tokio::test]
async fn other_retry_after_spellings() {
    for (format, check) in [
        (
            RetryAfterFormat::Integer,
            Some(whole_seconds as fn(&str) -> bool),
        ),
        (
            RetryAfterFormat::HttpDate,
            Some(http_date as fn(&str) -> bool),
        ),
        (RetryAfterFormat::Absent, None),
    ] {
        let config = ServeConfig {
            rate: Some(1.0),
            retry_after_format: format,
            ..ServeConfig::default()
        };
        let sim = start(config, generated()).await.expect("start");
        let client = Client::new();
        let token = fetch_token(&client, &sim).await;
        let url = format!("{}/{TI}/intelProfiles", sim.url);
        get(&client, &url, &token).await;
        let response = get(&client, &url, &token).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let header = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok());
        match check {
            Some(check) => assert!(header.is_some_and(check), "{format:?}: {header:?}"),
            None => assert!(header.is_none()),
        }
        sim.stop().await.expect("stop");
    }
}

#[tokio::test]
async fn graph_routes_need_a_valid_token() {
    let sim = start(ServeConfig::default(), adversarial())
        .await
        .expect("start");
    let client = Client::new();
    let url = format!("{}/{TI}/intelProfiles", sim.url);

    let anonymous = client.get(&url).send().await.expect("request");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    assert_eq!(
        get(&client, &url, "made-up").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let wrong = token_response(&client, &sim, "nope").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], serde_json::json!([7_000_215]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .starts_with("AADSTS7000215: ")
    );

    let bad_scope = client
        .post(format!("{}/sim-tenant/oauth2/v2.0/token", sim.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=sim-client&client_secret=sim-secret&scope=User.Read&grant_type=client_credentials")
        .send()
        .await
        .expect("token");
    assert_eq!(bad_scope.status(), StatusCode::BAD_REQUEST);

    let token = fetch_token(&client, &sim).await;
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let issued: Vec<String> = client
        .get(format!("{}/_sim/tokens", sim.url))
        .send()
        .await
        .expect("tokens")
        .json()
        .await
        .expect("json");
    assert_eq!(issued, std::slice::from_ref(&token));
    let s = stats(&client, &sim).await;
    assert_eq!(s["unauthorized"], 2);
    assert_eq!(s["token_requests"], 3);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn tokens_expire_and_can_be_renewed() {
    let config = ServeConfig {
        token_ttl: Duration::from_secs(1),
        ..ServeConfig::default()
    };
    let sim = start(config, adversarial()).await.expect("start");
    let client = Client::new();
    let url = format!("{}/{TI}/intelProfiles", sim.url);
    let first = fetch_token(&client, &sim).await;
    assert_eq!(get(&client, &url, &first).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = get(&client, &url, &first).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let body: Value = expired.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired")
    );

    let second = fetch_token(&client, &sim).await;
    assert_eq!(get(&client, &url, &second).await.status(), StatusCode::OK);
    let expire: Value = client
        .post(format!("{}/_sim/expire-tokens", sim.url))
        .send()
        .await
        .expect("expire")
        .json()
        .await
        .expect("json");
    assert_eq!(expire["expired"], 1);
    assert_eq!(
        get(&client, &url, &second).await.status(),
        StatusCode::UNAUTHORIZED
    );
    sim.stop().await.expect("stop");
}

fn faulty(kind: FaultKind) -> ServeConfig {
    ServeConfig {
        faults: FaultPlan {
            rate: 1.0,
            kinds: vec![kind],
            after: 1,
        },
        slow: Duration::from_millis(300),
        ..ServeConfig::default()
    }
}

#[tokio::test]
async fn reset_and_truncate_are_errors_for_reqwest() {
    // reset: no response at all.
    let sim = start(faulty(FaultKind::Reset), generated())
        .await
        .expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    let url = format!("{}/{TI}/intelProfiles", sim.url);
    assert_eq!(
        get(&client, &url, &token).await.status(),
        StatusCode::OK,
        "--fault-after 1"
    );
    let reset = client.get(&url).bearer_auth(&token).send().await;
    let error = reset.expect_err("a reset connection is an error");
    // reqwest: kind Request, source hyper Io ConnectionReset (the server sent an RST).
    assert!(error.is_request(), "{error:?}");
    assert_eq!(stats(&client, &sim).await["faults"]["reset"], 1);
    sim.stop().await.expect("stop");

    // truncate: a 200 head, half a body.
    let sim = start(faulty(FaultKind::Truncate), generated())
        .await
        .expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    let url = format!("{}/{TI}/intelProfiles", sim.url);
    get(&client, &url, &token).await;
    let response = get(&client, &url, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let length = response.content_length();
    assert!(
        length.is_some_and(|l| l > 100),
        "full Content-Length announced: {length:?}"
    );
    let body = response.bytes().await;
    // reqwest: kind Decode, source hyper Body IncompleteBody.
    let error = body.expect_err("the truncated body is an error, not short JSON");
    assert!(error.is_decode() || error.is_body(), "{error:?}");
    assert_eq!(stats(&client, &sim).await["faults"]["truncate"], 1);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn status_faults_and_slow_answers() {
    for (kind, status, code) in [
        (
            FaultKind::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceNotAvailable",
        ),
        (
            FaultKind::GatewayTimeout,
            StatusCode::GATEWAY_TIMEOUT,
            "gatewayTimeout",
        ),
        (
            FaultKind::Internal,
            StatusCode::INTERNAL_SERVER_ERROR,
            "generalException",
        ),
    ] {
        let sim = start(faulty(kind), generated()).await.expect("start");
        let client = Client::new();
        let token = fetch_token(&client, &sim).await;
        let url = format!("{}/{TI}/intelProfiles", sim.url);
        get(&client, &url, &token).await;
        let response = get(&client, &url, &token).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], code);
        assert_eq!(stats(&client, &sim).await["faults"][kind.name()], 1);
        sim.stop().await.expect("stop");
    }
    let sim = start(faulty(FaultKind::Slow), generated())
        .await
        .expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    let url = format!("{}/{TI}/intelProfiles", sim.url);
    get(&client, &url, &token).await;
    let started = Instant::now();
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn headers_routes_and_errors() {
    let store = load_dump(&repo().join("samples/mdti")).expect("samples");
    let profile_id = store.profiles()[0]
        .entry
        .id
        .as_deref()
        .expect("id")
        .to_owned();
    let sim = start(
        ServeConfig {
            reputation_500_rate: 0.0,
            ..ServeConfig::default()
        },
        store,
    )
    .await
    .expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    let base = format!("{}/{TI}", sim.url);

    let response = client
        .get(format!("{base}/intelProfiles('{}')", pct(&profile_id)))
        .bearer_auth(&token)
        .header("client-request-id", "my-id-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(h["content-type"], ODATA_JSON);
    assert_eq!(h["odata-version"], "4.0");
    assert_eq!(h["client-request-id"], "my-id-1");
    assert!(h.contains_key("request-id"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["id"], profile_id.as_str());
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap_or_default()
            .ends_with("intelProfiles/$entity")
    );

    let beta = get(
        &client,
        &format!("{}/beta/security/threatIntelligence/intelProfiles", sim.url),
        &token,
    )
    .await;
    assert_eq!(beta.status(), StatusCode::OK);

    let slash_id = "Pf6j03fguKw/tF0bT2EMv/VJteG0BFqo+A==";
    let response = get(
        &client,
        &format!(
            "{base}/intelProfiles/{}/indicators?$select=id",
            pct(slash_id)
        ),
        &token,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.expect("json");
    let first = &page["value"][0];
    assert!(
        first.get("id").is_some() && first.get("artifact").is_none(),
        "{first}"
    );
    let indicator_id = first["id"].as_str().expect("id").to_owned();
    let response = get(
        &client,
        &format!(
            "{base}/intelligenceProfileIndicators/{}",
            pct(&indicator_id)
        ),
        &token,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = get(
        &client,
        &format!(
            "{base}/intelProfileIndicators('{}')?$expand=artifact",
            pct(&indicator_id)
        ),
        &token,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let host = get(
        &client,
        &format!("{base}/hosts/{}", pct("2001:db8:4f::23")),
        &token,
    )
    .await;
    assert_eq!(host.status(), StatusCode::OK);
    let reputation = get(
        &client,
        &format!("{base}/hosts/198.51.100.23/reputation"),
        &token,
    )
    .await;
    assert_eq!(reputation.status(), StatusCode::OK);
    let missing = get(
        &client,
        &format!("{base}/hosts/nothing.example/reputation"),
        &token,
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "itemNotFound");

    let unknown = get(&client, &format!("{base}/intelProfiles/nope"), &token).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad = get(&client, &format!("{base}/intelProfiles?$top=lots"), &token).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalidRequest");
    let filtered = get(
        &client,
        &format!("{base}/intelProfiles?$filter=kind%20eq%20%27tool%27"),
        &token,
    )
    .await;
    let page: Value = filtered.json().await.expect("json");
    let kinds: HashSet<&str> = page["value"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert_eq!(kinds, HashSet::from(["tool"]));

    let post = client
        .post(format!("{base}/intelProfiles"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    let s = stats(&client, &sim).await;
    for key in [
        "requests",
        "token_requests",
        "throttled",
        "early_requests",
        "max_in_flight",
        "in_flight",
        "served_pages",
    ] {
        assert!(s[key].is_u64(), "{key} in {s}");
    }
    for fault in ["503", "504", "500", "reset", "truncate", "slow"] {
        assert!(s["faults"][fault].is_u64());
    }
    assert!(
        s["by_route"]["intelProfiles/{id}/indicators"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    client
        .post(format!("{}/_sim/reset-stats", sim.url))
        .send()
        .await
        .expect("reset");
    assert_eq!(stats(&client, &sim).await["requests"], 0);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn forbidden_and_unauthorized_modes() {
    for (mode, status, code) in [
        (Mode::Forbidden, StatusCode::FORBIDDEN, "accessDenied"),
        (
            Mode::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
        ),
    ] {
        let sim = start(
            ServeConfig {
                mode,
                ..ServeConfig::default()
            },
            generated(),
        )
        .await
        .expect("start");
        let client = Client::new();
        let token = fetch_token(&client, &sim).await;
        let response = get(&client, &format!("{}/{TI}/intelProfiles", sim.url), &token).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], code);
        if mode == Mode::Forbidden {
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("ThreatIntelligence.Read.All") && message.contains("license"));
        }
        sim.stop().await.expect("stop");
    }
}

#[tokio::test]
async fn public_url_is_used_in_next_links() {
    let config = ServeConfig {
        page_size: 2,
        public_url: Some("https://graph.example.test".into()),
        ..ServeConfig::default()
    };
    let sim = start(config, generated()).await.expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    let page: Value = get(
        &client,
        &format!("{}/{TI}/intelProfiles?$count=true", sim.url),
        &token,
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        page["@odata.nextLink"],
        "https://graph.example.test/v1.0/security/threatIntelligence/intelProfiles?$count=true&$top=2&$skip=2"
    );
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn the_binary_announces_its_port_and_stops_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ctiport-sim"))
        .args([
            "serve",
            "--generate-profiles",
            "3",
            "--generate-indicators",
            "30",
            "--log-level",
            "warn",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    // The first stdout line is the announcement (nothing else is ever printed on stdout).
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .expect("the announcement")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let response = Client::new()
        .get(format!("{url}/_sim/stats"))
        .send()
        .await
        .expect("stats");
    assert_eq!(response.status(), StatusCode::OK);

    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "graceful exit: {status:?}");
}

#[test]
fn the_binary_generates_a_dump() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ctiport-sim"))
        .args([
            "generate",
            "--profiles",
            "4",
            "--indicators",
            "100",
            "--seed",
            "5",
            "--out",
        ])
        .arg(dir.path().join("dump"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(summary["profiles"], 4);
    assert_eq!(summary["indicators"], 100);
    assert!(summary["files"].as_u64().unwrap_or(0) >= 2);
    let store = load_dump(&dir.path().join("dump")).expect("loads");
    assert_eq!(store.indicator_count(), 100);
}
