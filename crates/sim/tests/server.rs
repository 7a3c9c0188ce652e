//! End-to-end checks of the simulator over real HTTP: the server runs in-process on an
//! ephemeral port and is driven with reqwest, the client library ctiport itself uses.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ctiport_model::pct::pct;
use ctiport_sim::app::{Mode, ServeConfig};
use ctiport_sim::data::{Store, load_dump};
use ctiport_sim::faults::{FaultKind, FaultPlan, Latency};
use ctiport_sim::generate::{Spec, generate_store};
use ctiport_sim::listing::{Drift, ListingPlan};
use ctiport_sim::server::{Running, start};
use ctiport_sim::throttle::{RetryAfterFormat, StormPlan};
use ctiport_sim::token_faults::{TokenFaultKind, TokenFaultPlan};
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
        ..Spec::default()
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

// ---- Fault, latency and listing modes (docs/sim.md, "Misbehaviour") ----

/// The sim's request log (`GET /_sim/requests`).
async fn request_log(client: &Client, sim: &Running) -> Vec<Value> {
    let log: Value = client
        .get(format!("{}/_sim/requests", sim.url))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    log["requests"].as_array().expect("array").clone()
}

fn ids_of(items: &[Value]) -> Vec<String> {
    items.iter().filter_map(record_id).collect()
}

/// Every indicator id of `profile` in store order.
fn indicator_ids(store: &Store, profile: &str) -> Vec<String> {
    store
        .indicators_of(profile)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.entry.id.as_deref().map(str::to_owned))
        .collect()
}

/// Every profile id of `store`, in listing order.
fn profile_ids(store: &Store) -> Vec<String> {
    store
        .profiles()
        .iter()
        .filter_map(|p| p.entry.id.as_deref().map(str::to_owned))
        .collect()
}

/// `…/intelProfiles/{pct(id)}/indicators{query}` on `sim`.
fn indicators_url(sim: &Running, id: &str, query: &str) -> String {
    format!(
        "{}/{TI}/intelProfiles/{}/indicators{query}",
        sim.url,
        pct(id)
    )
}

/// Starts the sim, with a client and a token for it.
async fn serve(config: ServeConfig, store: Store) -> (Running, Client, String) {
    let sim = start(config, store).await.expect("start");
    let client = Client::new();
    let token = fetch_token(&client, &sim).await;
    (sim, client, token)
}

fn listing(plan: ListingPlan) -> ServeConfig {
    ServeConfig {
        listing: plan,
        ..ServeConfig::default()
    }
}

#[tokio::test]
async fn an_empty_listing_is_a_successful_empty_collection() {
    let store = generated();
    let first_id = profile_ids(&store)[0].clone();
    let (sim, client, token) = serve(
        listing(ListingPlan {
            limit: Some(0),
            ..ListingPlan::default()
        }),
        store,
    )
    .await;
    let response = get(
        &client,
        &format!("{}/{TI}/intelProfiles?$count=true", sim.url),
        &token,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.expect("json");
    assert_eq!(page["value"], serde_json::json!([]));
    assert_eq!(page["@odata.count"], 0);
    assert!(page.get("@odata.nextLink").is_none());
    let count = get(
        &client,
        &format!("{}/{TI}/intelProfiles/$count", sim.url),
        &token,
    )
    .await;
    assert_eq!(count.text().await.expect("text"), "0");
    // The profiles still exist: only the listing lost them.
    let profile = format!("{}/{TI}/intelProfiles/{}", sim.url, pct(&first_id));
    assert_eq!(
        get(&client, &profile, &token).await.status(),
        StatusCode::OK
    );
    let indicators = get(&client, &format!("{profile}/indicators"), &token).await;
    assert_eq!(indicators.status(), StatusCode::OK);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn a_short_listing_shows_only_the_first_profiles_on_every_page() {
    let store = generated();
    let all = ids_of(
        &store
            .profiles()
            .iter()
            .map(|p| serde_json::from_str(p.entry.raw.get()).expect("json"))
            .collect::<Vec<Value>>(),
    );
    let config = ServeConfig {
        page_size: 2,
        ..listing(ListingPlan {
            limit: Some(5),
            ..ListingPlan::default()
        })
    };
    let (sim, client, token) = serve(config, store).await;
    let (items, bodies) = walk(
        &client,
        format!("{}/{TI}/intelProfiles?$count=true", sim.url),
        &token,
    )
    .await;
    assert_eq!(ids_of(&items), all[..5]);
    assert_eq!(bodies.len(), 3, "pages of 2, 2 and 1");
    let last: Value = serde_json::from_str(&bodies[2]).expect("json");
    assert_eq!(last["@odata.count"], 5);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn uneven_pages_are_short_and_varied_yet_deliver_everything_once() {
    let store = generated();
    let profile = store
        .profiles()
        .iter()
        .filter_map(|p| p.entry.id.as_deref())
        .max_by_key(|id| store.indicators_of(id).map_or(0, <[_]>::len))
        .expect("a profile")
        .to_owned();
    let want = indicator_ids(&store, &profile);
    assert!(
        want.len() > 100,
        "enough records for many pages: {}",
        want.len()
    );
    let config = ServeConfig {
        seed: 5,
        ..listing(ListingPlan {
            uneven: true,
            ..ListingPlan::default()
        })
    };
    let (sim, client, token) = serve(config, store).await;
    let url = indicators_url(&sim, &profile, "?$top=8");
    let (items, bodies) = walk(&client, url, &token).await;
    assert_eq!(ids_of(&items), want, "every record once, in order");
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| {
            let page: Value = serde_json::from_str(b).expect("json");
            page["value"].as_array().map_or(0, Vec::len)
        })
        .collect();
    let (last, before) = sizes.split_last().expect("pages");
    assert!(*last <= 8 && before.iter().all(|s| *s <= 8), "{sizes:?}");
    assert!(
        before.iter().any(|s| *s < 8),
        "some page short of $top: {sizes:?}"
    );
    assert!(
        before.contains(&0),
        "an empty page with a nextLink: {sizes:?}"
    );
    let distinct: HashSet<&usize> = before.iter().collect();
    assert!(distinct.len() >= 4, "sizes vary: {sizes:?}");
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn drift_move_makes_a_paging_client_miss_one_record_and_see_another_twice() {
    let store = generated();
    let profile = profile_ids(&store)[0].clone();
    let want = indicator_ids(&store, &profile);
    assert!(want.len() > 8, "{}", want.len());
    let (sim, client, token) = serve(
        listing(ListingPlan {
            drift: Some(Drift::Move),
            ..ListingPlan::default()
        }),
        store,
    )
    .await;
    let url = indicators_url(&sim, &profile, "?$top=4");
    let (items, _) = walk(&client, url.clone(), &token).await;
    let got = ids_of(&items);
    let mut expected: Vec<String> = want[..4].to_vec();
    expected.extend(want[5..].iter().cloned());
    expected.push(want[0].clone());
    assert_eq!(got, expected, "want[4] slid onto page 1 after it was read");
    // The data has changed for good: a new walk sees the new order, complete.
    let (again, _) = walk(&client, url, &token).await;
    let mut moved = want[1..].to_vec();
    moved.push(want[0].clone());
    assert_eq!(ids_of(&again), moved);
    assert_eq!(stats(&client, &sim).await["drifted"], 1);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn drift_change_alters_the_last_record_after_the_first_page() {
    let store = generated();
    let profile = profile_ids(&store)[0].clone();
    let last_raw = store
        .indicators_of(&profile)
        .and_then(<[_]>::last)
        .map(|i| i.entry.raw.get().to_owned())
        .expect("indicators");
    let first_title = store
        .profiles()
        .last()
        .map(|p| p.entry.raw.get().to_owned());
    let (sim, client, token) = serve(
        listing(ListingPlan {
            drift: Some(Drift::Change),
            ..ListingPlan::default()
        }),
        store,
    )
    .await;
    let url = indicators_url(&sim, &profile, "?$top=1000");
    let before = get(&client, &url, &token).await.text().await.expect("body");
    assert!(
        before.contains(&last_raw),
        "the first answer shows the data as it was"
    );
    let started = std::time::SystemTime::now();
    let after: Value = get(&client, &url, &token).await.json().await.expect("json");
    let changed = after["value"]
        .as_array()
        .and_then(|a| a.last())
        .expect("last");
    let was: Value = serde_json::from_str(&last_raw).expect("json");
    assert_eq!(changed["id"], was["id"]);
    assert_ne!(changed["lastSeenDateTime"], was["lastSeenDateTime"]);
    let seen = changed["lastSeenDateTime"].as_str().expect("a timestamp");
    let year = started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| 1970 + d.as_secs() / 31_556_952)
        .unwrap_or(0);
    assert!(
        seen.starts_with(&year.to_string()) && seen.ends_with('Z'),
        "{seen}"
    );
    let mut rest = changed.clone();
    let mut was_rest = was.clone();
    rest.as_object_mut()
        .expect("obj")
        .remove("lastSeenDateTime");
    was_rest
        .as_object_mut()
        .expect("obj")
        .remove("lastSeenDateTime");
    assert_eq!(rest, was_rest, "only lastSeenDateTime changed");

    // The listing drifts too: its last profile is renamed after the first answer.
    let listing_url = format!("{}/{TI}/intelProfiles?$top=1000", sim.url);
    let first: Value = get(&client, &listing_url, &token)
        .await
        .json()
        .await
        .expect("json");
    let second: Value = get(&client, &listing_url, &token)
        .await
        .json()
        .await
        .expect("json");
    let title = |v: &Value| {
        v["value"]
            .as_array()
            .and_then(|a| a.last())
            .map(|p| p["title"].clone())
    };
    let original: Value = serde_json::from_str(&first_title.expect("profiles")).expect("json");
    assert_eq!(title(&first), Some(original["title"].clone()));
    assert_eq!(
        title(&second).and_then(|t| t.as_str().map(str::to_owned)),
        original["title"].as_str().map(|t| format!("{t} (updated)"))
    );
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn the_token_endpoint_fails_a_given_number_of_times_then_succeeds() {
    let config = ServeConfig {
        token_faults: TokenFaultPlan {
            count: 4,
            kinds: vec![
                TokenFaultKind::Unavailable,
                TokenFaultKind::Internal,
                TokenFaultKind::Timeout,
                TokenFaultKind::Reset,
            ],
            revoke_every: 0,
        },
        stall: Duration::from_millis(400),
        ..ServeConfig::default()
    };
    let sim = start(config, generated()).await.expect("start");
    let client = Client::new();
    let first = token_response(&client, &sim, "sim-secret").await;
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        token_response(&client, &sim, "sim-secret").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    // A client with a shorter timeout gives up on the third.
    let impatient = Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .expect("client");
    let started = Instant::now();
    let timed_out = impatient
        .post(format!("{}/sim-tenant/oauth2/v2.0/token", sim.url))
        .body("x")
        .send()
        .await
        .expect_err("no answer within the client's timeout");
    assert!(timed_out.is_timeout(), "{timed_out:?}");
    assert!(started.elapsed() < Duration::from_millis(390));
    let reset = client
        .post(format!("{}/sim-tenant/oauth2/v2.0/token", sim.url))
        .body("x")
        .send()
        .await
        .expect_err("the connection is reset");
    assert!(reset.is_request(), "{reset:?}");
    // Then the endpoint works.
    fetch_token(&client, &sim).await;
    let s = stats(&client, &sim).await;
    assert_eq!(s["token_requests"], 5);
    assert_eq!(
        s["token_faults"],
        serde_json::json!({"500": 1, "503": 1, "504": 0, "timeout": 1, "reset": 1})
    );
    let statuses: Vec<u64> = request_log(&client, &sim)
        .await
        .iter()
        .filter(|e| e["route"] == "token")
        .map(|e| e["status"].as_u64().unwrap_or(999))
        .collect();
    // The client that timed out is logged as gone (499), the reset one with no status (0).
    assert_eq!(statuses, [503, 500, 499, 0, 200]);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn a_long_storm_answers_429_to_everything_for_its_duration() {
    let config = ServeConfig {
        storm: Some(StormPlan {
            after: 1,
            duration: Duration::from_millis(1200),
            wait: Duration::from_millis(200),
        }),
        ..ServeConfig::default()
    };
    let (sim, client, token) = serve(config, generated()).await;
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let started = Instant::now();
    let mut throttled = 0;
    loop {
        let response = get(&client, &url, &token).await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "0.200");
        throttled += 1;
        // Obey to the letter: the storm goes on regardless.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "the storm ends");
    }
    assert!(started.elapsed() >= Duration::from_millis(1150));
    assert!(
        (5..=7).contains(&throttled),
        "consecutive 429s: {throttled}"
    );
    let s = stats(&client, &sim).await;
    assert_eq!(s["throttled"], throttled);
    assert_eq!(s["early_requests"], 0, "obeying every Retry-After");
    let log = request_log(&client, &sim).await;
    let graph: Vec<&Value> = log.iter().filter(|e| e["route"] != "token").collect();
    assert_eq!(graph.len(), throttled + 2);
    for entry in &graph[1..=throttled] {
        assert_eq!(entry["status"], 429);
        assert_eq!(entry["retry_after"], "0.200");
        let (t, until) = (
            entry["t"].as_f64().expect("t"),
            entry["retry_until"].as_f64().expect("until"),
        );
        assert!((until - t - 0.2).abs() < 0.05, "{entry}");
    }
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn fault_retry_after_decides_whether_a_503_says_when_to_come_back() {
    for (p, with_header) in [(0.0, false), (1.0, true)] {
        let config = ServeConfig {
            fault_retry_after: p,
            ..faulty(FaultKind::Unavailable)
        };
        let (sim, client, token) = serve(config, generated()).await;
        let url = format!("{}/{TI}/intelProfiles", sim.url);
        get(&client, &url, &token).await;
        for _ in 0..10 {
            let response = get(&client, &url, &token).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers().contains_key("retry-after"),
                with_header,
                "p = {p}"
            );
        }
        let log = request_log(&client, &sim).await;
        let promised = log.iter().filter(|e| !e["retry_until"].is_null()).count();
        assert_eq!(promised, if with_header { 10 } else { 0 });
        sim.stop().await.expect("stop");
    }
}

#[tokio::test]
async fn a_stalled_body_outlasts_a_short_client_timeout() {
    let config = ServeConfig {
        stall: Duration::from_millis(700),
        ..faulty(FaultKind::Stall)
    };
    let (sim, client, token) = serve(config, generated()).await;
    let url = format!("{}/{TI}/intelProfiles", sim.url);
    get(&client, &url, &token).await;

    let impatient = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let started = Instant::now();
    let response = get(&impatient, &url, &token).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the head arrives at once"
    );
    let error = response.bytes().await.expect_err("the body does not");
    assert!(error.is_timeout(), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(650));

    // A patient client gets the whole answer, late.
    let started = Instant::now();
    let response = get(&client, &url, &token).await;
    let page: Value = response.json().await.expect("complete JSON");
    assert!(page["value"].as_array().is_some_and(|v| !v.is_empty()));
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(stats(&client, &sim).await["faults"]["stall"], 2);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn truncated_json_is_a_complete_answer_that_does_not_parse() {
    let (sim, client, token) = serve(faulty(FaultKind::TruncatedJson), generated()).await;
    let url = format!("{}/{TI}/intelProfiles", sim.url);
    let full = get(&client, &url, &token).await.text().await.expect("body");
    let response = get(&client, &url, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let length = response.content_length();
    let body = response.text().await.expect("the HTTP body is complete");
    assert_eq!(length, Some(body.len() as u64));
    assert!(body.len() < full.len() && body.len() >= full.len() / 2 - 4);
    assert!(serde_json::from_str::<Value>(&body).is_err());
    // Same answer up to the cut (only the request ids in the context differ: none here).
    assert_eq!(&full[..40], &body[..40]);
    assert_eq!(stats(&client, &sim).await["faults"]["truncated-json"], 1);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn a_listed_profile_can_answer_404_for_its_indicators() {
    let store = generated();
    let ids = profile_ids(&store);
    let missing = ids[3].clone();
    assert!(!indicator_ids(&store, &missing).is_empty());
    let (sim, client, token) = serve(
        listing(ListingPlan {
            missing_indicators: vec![missing.clone()],
            ..ListingPlan::default()
        }),
        store,
    )
    .await;
    let (listed, _) = walk(&client, format!("{}/{TI}/intelProfiles", sim.url), &token).await;
    assert!(ids_of(&listed).contains(&missing), "still listed");
    let base = format!("{}/{TI}/intelProfiles/{}", sim.url, pct(&missing));
    assert_eq!(get(&client, &base, &token).await.status(), StatusCode::OK);
    for url in [
        format!("{base}/indicators"),
        format!("{base}/indicators/$count"),
    ] {
        let response = get(&client, &url, &token).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "itemNotFound");
    }
    for other in ids.iter().filter(|id| **id != missing) {
        let url = indicators_url(&sim, other, "");
        assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    }
    assert_eq!(stats(&client, &sim).await["by_status"]["404"], 2);
    sim.stop().await.expect("stop");

    // A rate picks a fixed share of the profiles.
    let store = generate_store(Spec {
        profiles: 200,
        indicators: 200,
        seed: 2,
        ..Spec::default()
    })
    .expect("generate");
    let ids = profile_ids(&store);
    let sim = start(
        listing(ListingPlan {
            missing_indicators_rate: 0.25,
            ..ListingPlan::default()
        }),
        store,
    )
    .await
    .expect("start");
    let token = fetch_token(&client, &sim).await;
    let mut missing = 0;
    for id in &ids {
        let url = indicators_url(&sim, id, "");
        let first = get(&client, &url, &token).await.status();
        assert_eq!(
            get(&client, &url, &token).await.status(),
            first,
            "fixed, not random"
        );
        missing += usize::from(first == StatusCode::NOT_FOUND);
    }
    assert!(
        (30..=70).contains(&missing),
        "about a quarter of 200: {missing}"
    );
    sim.stop().await.expect("stop");
}

/// Sends a GET with the path exactly as given (reqwest would resolve dot segments first) and
/// returns the status and body.
async fn raw_get(sim: &Running, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(sim.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        sim.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn awkward_ids_reach_their_profile_only_when_encoded() {
    let store = generate_store(Spec {
        profiles: 8,
        indicators: 80,
        seed: 9,
        even: true,
        awkward_ids: true,
    })
    .expect("generate");
    let ids = profile_ids(&store);
    let next = ids[4].clone();
    assert_eq!(ids[..3], [".", "..", "a+b/c=="]);
    assert_eq!(ids[3], format!("x/../{next}"));
    let want: Vec<Vec<String>> = ids.iter().map(|id| indicator_ids(&store, id)).collect();
    let (sim, client, token) = serve(ServeConfig::default(), store).await;
    let ti = format!("/{TI}");

    // Encoded, each id reaches its own profile: as path segments and in the key form.
    for (id, want) in ids.iter().zip(&want).take(4) {
        // Every byte but letters and digits, dots included: reqwest resolves `.` and `..`
        // segments (and `%2E` ones, as the WHATWG URL standard says) before sending.
        let encoded: String = id
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let path = format!("{ti}/intelProfiles/{encoded}/indicators?$top=100");
        let (status, body) = raw_get(&sim, &path, &token).await;
        assert_eq!(status, 200, "{id}");
        let page: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            &ids_of(page["value"].as_array().expect("value")),
            want,
            "{id}"
        );
        let quoted = id.replace('\'', "''");
        let url = format!(
            "{}{ti}/intelProfiles('{}')/indicators?$top=100",
            sim.url,
            pct(&quoted)
        );
        let (items, _) = walk(&client, url, &token).await;
        assert_eq!(&ids_of(&items), want, "key form of {id}");
    }
    let (status, _) = raw_get(
        &sim,
        &format!("{ti}/intelProfiles/%2E%2E/indicators"),
        &token,
    )
    .await;
    assert_eq!(status, 200, "%2E%2E is the id '..'");

    // Unencoded, they name other resources, as behind any URL-normalising front end.
    let (status, body) = raw_get(&sim, &format!("{ti}/intelProfiles/./indicators"), &token).await;
    assert_eq!(
        status, 404,
        "intelProfiles/indicators: no profile 'indicators'"
    );
    assert!(body.contains("'indicators'"), "{body}");
    let (status, body) = raw_get(&sim, &format!("{ti}/intelProfiles/../indicators"), &token).await;
    assert_eq!(
        status, 400,
        "the segment 'indicators' under threatIntelligence: {body}"
    );
    let (status, body) = raw_get(
        &sim,
        &format!("{ti}/intelProfiles/x/../{}/indicators?$top=100", pct(&next)),
        &token,
    )
    .await;
    assert_eq!(status, 200, "another profile's indicators");
    let page: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ids_of(page["value"].as_array().expect("value")), want[4]);
    let (status, _) = raw_get(&sim, &format!("{ti}/../../_sim/stats"), &token).await;
    assert_eq!(status, 404, "out of the Graph base");
    let log = request_log(&client, &sim).await;
    assert!(
        log.iter().any(|e| e["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/intelProfiles/../indicators"))
            && e["status"] == 400),
        "the log shows the path as sent"
    );
    let graph = log.iter().filter(|e| e["route"] != "token").count();
    assert_eq!(stats(&client, &sim).await["requests"], graph);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn latency_delays_every_answer_with_jitter_around_it() {
    let config = ServeConfig {
        latency: Latency {
            base: Duration::from_millis(150),
            jitter: Duration::ZERO,
        },
        ..ServeConfig::default()
    };
    let (sim, client, token) = serve(config, generated()).await;
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
    // Concurrent requests wait side by side, not one after another.
    let started = Instant::now();
    let all = futures::future::join_all((0..6).map(|_| get(&client, &url, &token))).await;
    assert!(all.iter().all(|r| r.status() == StatusCode::OK));
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stats(&client, &sim).await["max_in_flight"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
    // A client that gives up first is logged as gone.
    let impatient = Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .expect("client");
    let error = impatient.get(&url).bearer_auth(&token).send().await;
    assert!(error.is_err_and(|e| e.is_timeout()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = request_log(&client, &sim).await;
    assert_eq!(log.last().map(|e| e["status"].clone()), Some(499.into()));
    sim.stop().await.expect("stop");

    let config = ServeConfig {
        latency: Latency {
            base: Duration::from_millis(100),
            jitter: Duration::from_millis(60),
        },
        ..ServeConfig::default()
    };
    let sim = start(config, generated()).await.expect("start");
    let token = fetch_token(&client, &sim).await;
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);
    let mut took = Vec::new();
    for _ in 0..12 {
        let started = Instant::now();
        get(&client, &url, &token).await;
        took.push(started.elapsed());
    }
    let (min, max) = (took.iter().min().copied(), took.iter().max().copied());
    let (min, max) = (min.expect("some"), max.expect("some"));
    assert!(min >= Duration::from_millis(40), "{took:?}");
    assert!(max - min >= Duration::from_millis(15), "jittered: {took:?}");
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn a_bucket_whose_burst_is_far_below_its_rate() {
    let config = ServeConfig {
        rate: Some(20.0),
        burst: Some(5.0),
        ..ServeConfig::default()
    };
    let (sim, client, token) = serve(config, generated()).await;
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);
    // Open the connections first, so the volley arrives as one.
    let stats_url = format!("{}/_sim/stats", sim.url);
    futures::future::join_all((0..20).map(|_| client.get(&stats_url).send())).await;
    let started = Instant::now();
    let all = futures::future::join_all((0..20).map(|_| get(&client, &url, &token))).await;
    let refills = (started.elapsed().as_secs_f64() * 20.0).floor() as usize;
    let ok = all.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert!(
        (5..=5 + refills).contains(&ok),
        "the burst (plus what the rate refilled meanwhile) bounds a volley: {ok}, {refills} refills"
    );
    let waits: Vec<f64> = all
        .iter()
        .filter_map(|r| r.headers().get("retry-after")?.to_str().ok()?.parse().ok())
        .collect();
    assert_eq!(waits.len(), 20 - ok);
    assert!(
        waits.iter().all(|w| *w > 0.0 && *w <= 0.05),
        "one token per 50 ms: {waits:?}"
    );
    // Paced at the rate, nothing is refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..10 {
        assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(55)).await;
    }
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn tokens_are_revoked_every_n_requests() {
    let config = ServeConfig {
        token_faults: TokenFaultPlan {
            revoke_every: 3,
            ..TokenFaultPlan::default()
        },
        ..ServeConfig::default()
    };
    let sim = start(config, generated()).await.expect("start");
    let client = Client::new();
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);
    let mut token = fetch_token(&client, &sim).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let status = get(&client, &url, &token).await.status();
        if status == StatusCode::UNAUTHORIZED {
            token = fetch_token(&client, &sim).await;
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 401, 200, 200, 401, 200]);
    sim.stop().await.expect("stop");
}

#[tokio::test]
async fn the_request_log_records_timing_and_stays_bounded() {
    let config = ServeConfig {
        rate: Some(2.0),
        burst: Some(1.0),
        request_log_cap: 4,
        ..ServeConfig::default()
    };
    let (sim, client, token) = serve(config, generated()).await;
    let url = format!("{}/{TI}/intelProfiles?$top=1", sim.url);
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let throttled = get(&client, &url, &token).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = throttled.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .to_owned();
    // Disobey once: early.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        get(&client, &url, &token).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    let log = request_log(&client, &sim).await;
    assert_eq!(log.len(), 4, "token + 3 Graph requests");
    assert_eq!(log[0]["route"], "token");
    assert_eq!(log[1]["route"], "intelProfiles");
    assert_eq!(log[1]["status"], 200);
    assert_eq!(
        log[1]["path"],
        "/v1.0/security/threatIntelligence/intelProfiles?$top=1"
    );
    assert_eq!(log[2]["status"], 429);
    assert_eq!(log[2]["retry_after"], header.as_str());
    let t2 = log[2]["t"].as_f64().expect("t");
    let until = log[2]["retry_until"].as_f64().expect("until");
    let promised: f64 = header.parse().expect("seconds");
    let answered = log[2]["answered"].as_f64().expect("answered");
    assert!(answered >= t2 && answered < t2 + 0.1, "{}", log[2]);
    assert!((until - answered - promised).abs() < 0.02, "{}", log[2]);
    assert_eq!(log[2]["early"], false);
    assert_eq!(log[3]["early"], true);
    assert!(log[3]["t"].as_f64().expect("t") < until);
    assert!(t2 > log[1]["t"].as_f64().expect("t"));

    // One more entry drops the oldest.
    get(&client, &url, &token).await;
    let body: Value = client
        .get(format!("{}/_sim/requests", sim.url))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    assert_eq!(body["cap"], 4);
    assert_eq!(body["dropped"], 1);
    assert_eq!(body["requests"][0]["route"], "intelProfiles");
    let s = stats(&client, &sim).await;
    assert_eq!(
        s["per_second"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).sum::<u64>()),
        Some(4)
    );
    assert_eq!(s["by_status"], serde_json::json!({"200": 1, "429": 3}));
    client
        .post(format!("{}/_sim/reset-stats", sim.url))
        .send()
        .await
        .expect("reset");
    assert!(request_log(&client, &sim).await.is_empty());
    sim.stop().await.expect("stop");
}
