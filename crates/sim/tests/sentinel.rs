//! The Sentinel STIX upload stand-in over HTTP: each documented rule of
//! `articles/sentinel/stix-objects-api.md`, the version store, limits and faults.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic

mod common;

use std::time::{Duration, Instant};

use common::{GRAPH, MANAGEMENT, get_json, sim, token};
use ctiport_sim::sentinel::SentinelConfig;
use ctiport_sim::server::{Running, ServeConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const UPLOAD: &str = "threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview";

fn upload_url(sim: &Running, workspace: &str) -> String {
    format!("{}/workspaces/{workspace}/{UPLOAD}", sim.url)
}

async fn upload(client: &Client, sim: &Running, token: &str, body: &Value) -> reqwest::Response {
    client
        .post(upload_url(sim, "sim-workspace"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("reachable")
}

fn indicator(n: u32, modified: &str) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{n:08x}-71a2-445c-ab86-927291df48f8"),
        "created": "2020-01-01T00:00:00Z", "modified": modified,
        "pattern": format!("[ipv4-addr:value = '203.0.113.{}']", n % 250),
        "pattern_type": "stix", "valid_from": "2020-01-01T00:00:00Z"
    })
}

fn body(objects: Vec<Value>) -> Value {
    json!({"sourcesystem": "ctiport", "stixobjects": objects})
}

async fn objects(client: &Client, sim: &Running) -> Value {
    get_json(
        client,
        &format!("{}/_sim/sentinel/sim-workspace/objects", sim.url),
    )
    .await
}

async fn started(sentinel: SentinelConfig) -> (Client, Running, String) {
    let mut config = ServeConfig::default();
    config.microsoft.sentinel = sentinel;
    let sim = sim(config).await;
    let client = Client::new();
    let token = token(&client, &sim, MANAGEMENT).await;
    (client, sim, token)
}

#[tokio::test]
async fn documented_sample_is_accepted_with_an_empty_200() {
    let (client, sim, token) = started(SentinelConfig::default()).await;
    // The page's "Sample indicator request body" (shortened to its required members).
    let sample = json!({"sourcesystem": "test", "stixobjects": [
        {"type": "indicator", "spec_version": "2.1", "id": "indicator--10000003-71a2-445c-ab86-927291df48f8",
         "name": "Test Indicator 1", "created": "2010-02-26T18:29:07.778Z", "modified": "2011-02-26T18:29:07.778Z",
         "pattern": "[ipv4-addr:value = '172.29.6.7']", "pattern_type": "stix", "valid_from": "2015-02-26T18:29:07.778Z"},
        {"type": "threat-actor", "spec_version": "2.1", "id": "threat-actor--dfaa8d77-07e2-4e28-b2c8-92e9f7b04428",
         "created": "2014-11-19T23:39:03.893Z", "modified": "2014-11-19T23:39:03.893Z", "name": "Threat Actor 2.1",
         "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"]}
    ]});
    let response = upload(&client, &sim, &token, &sample).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");
    let view = objects(&client, &sim).await;
    assert_eq!(view["count"], 2);
    assert_eq!(view["objects"][0]["sourcesystem"], "test");
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn one_current_version_per_id_revoked_marked_no_duplicates() {
    let (client, sim, token) = started(SentinelConfig::default()).await;
    let v1: Vec<Value> = (1..=3)
        .map(|n| indicator(n, "2021-01-01T00:00:00Z"))
        .collect();
    assert_eq!(
        upload(&client, &sim, &token, &body(v1.clone()))
            .await
            .status(),
        StatusCode::OK
    );
    // Run 2: #1 unchanged (a duplicate), #2 changed, #3 revoked.
    let mut changed = indicator(2, "2021-06-01T00:00:00.5Z");
    changed["name"] = json!("renamed");
    let mut revoked = indicator(3, "2021-06-01T00:00:00Z");
    revoked["revoked"] = json!(true);
    let run2 = body(vec![v1[0].clone(), changed, revoked]);
    assert_eq!(
        upload(&client, &sim, &token, &run2).await.status(),
        StatusCode::OK
    );
    // A stale version of #2 changes nothing.
    let stale = body(vec![indicator(2, "2020-06-01T00:00:00Z")]);
    assert_eq!(
        upload(&client, &sim, &token, &stale).await.status(),
        StatusCode::OK
    );

    let view = objects(&client, &sim).await;
    assert_eq!(view["count"], 3, "{view}");
    assert_eq!(view["revoked"], 1);
    let by_id = |n: u32| {
        let id = format!("indicator--{n:08x}-71a2-445c-ab86-927291df48f8");
        view["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(1)["versions"], 1);
    assert_eq!(by_id(2)["versions"], 2);
    assert_eq!(by_id(2)["object"]["name"], "renamed");
    assert_eq!(by_id(2)["modified"], "2021-06-01T00:00:00.5Z");
    assert_eq!(by_id(3)["revoked"], true);
    assert_eq!(view["outcomes"]["duplicates"], 1);
    assert_eq!(view["outcomes"]["stale"], 1);
    assert_eq!(view["outcomes"]["conflicts"], 0);

    // Revoking is permanent: a later unrevoked version is refused per object.
    let unrevoke = body(vec![indicator(3, "2022-01-01T00:00:00Z")]);
    let response: Value = upload(&client, &sim, &token, &unrevoke)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(response["errors"][0]["recordIndex"], 0);
    assert!(
        response["errors"][0]["errorMessages"][0]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    assert_eq!(objects(&client, &sim).await["revoked"], 1);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn per_object_errors_map_to_record_indexes_and_the_rest_is_stored() {
    let (client, sim, token) = started(SentinelConfig::default()).await;
    let mut no_id = indicator(4, "2021-01-01T00:00:00Z");
    no_id.as_object_mut().unwrap().remove("id");
    let malware = json!({"type": "malware", "id": "malware--0000000a-71a2-445c-ab86-927291df48f8",
        "created": "2021-01-01T00:00:00Z", "modified": "2021-01-01T00:00:00Z", "name": "x", "is_family": true});
    let objects_sent = vec![
        indicator(1, "2021-01-01T00:00:00Z"),
        indicator(2, "2021-01-01T00:00:00Z"),
        malware,
        no_id,
    ];
    let response = upload(&client, &sim, &token, &body(objects_sent)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let errors: Value = response.json().await.unwrap();
    let errors = errors["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["recordIndex"], 2);
    assert!(
        errors[0]["errorMessages"][0]
            .as_str()
            .unwrap()
            .starts_with("Error for Property=type")
    );
    // The page's own example, word for word.
    assert_eq!(errors[1]["recordIndex"], 3);
    assert_eq!(
        errors[1]["errorMessages"],
        json!(["Error for Property=id: Required property is missing. Actual value: NULL."])
    );
    assert_eq!(objects(&client, &sim).await["count"], 2);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn request_level_refusals() {
    let (client, sim, token) = started(SentinelConfig {
        max_objects: 100,
        ..SentinelConfig::default()
    })
    .await;
    let hundred: Vec<Value> = (0..100)
        .map(|n| indicator(n, "2021-01-01T00:00:00Z"))
        .collect();
    assert_eq!(
        upload(&client, &sim, &token, &body(hundred.clone()))
            .await
            .status(),
        StatusCode::OK
    );
    let mut too_many = hundred;
    too_many.push(indicator(100, "2021-01-01T00:00:00Z"));
    let response = upload(&client, &sim, &token, &body(too_many)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refusal: Value = response.json().await.unwrap();
    assert_eq!(refusal["statusCode"], 400);
    assert!(refusal["message"].as_str().unwrap().contains("at most 100"));

    let restricted = json!({"sourcesystem": "Microsoft Sentinel", "stixobjects": [indicator(1, "2021-01-01T00:00:00Z")]});
    assert_eq!(
        upload(&client, &sim, &token, &restricted).await.status(),
        StatusCode::BAD_REQUEST
    );
    let empty = body(vec![]);
    assert_eq!(
        upload(&client, &sim, &token, &empty).await.status(),
        StatusCode::BAD_REQUEST
    );

    let send = |url: String, token: Option<String>| {
        let client = client.clone();
        async move {
            let mut request = client
                .post(url)
                .json(&body(vec![indicator(1, "2021-01-01T00:00:00Z")]));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.unwrap()
        }
    };
    let unknown = send(upload_url(&sim, "no-such-workspace"), Some(token.clone())).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.json::<Value>().await.unwrap()["statusCode"], 404);
    assert_eq!(
        send(upload_url(&sim, "sim-workspace"), None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A Graph token has the wrong audience.
    let graph = token_for(&client, &sim, GRAPH).await;
    assert_eq!(
        send(upload_url(&sim, "sim-workspace"), Some(graph))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let old_version = upload_url(&sim, "sim-workspace").replace("2024-02-01-preview", "2022-07-01");
    assert_eq!(
        send(old_version, Some(token.clone())).await.status(),
        StatusCode::BAD_REQUEST
    );
    sim.stop().await.unwrap();

    let (client, sim, token) = started(SentinelConfig {
        contributor: false,
        ..SentinelConfig::default()
    })
    .await;
    let response = upload(
        &client,
        &sim,
        &token,
        &body(vec![indicator(1, "2021-01-01T00:00:00Z")]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    sim.stop().await.unwrap();
}

async fn token_for(client: &Client, sim: &Running, scope: &str) -> String {
    token(client, sim, scope).await
}

#[tokio::test]
async fn throttling_gives_the_wait_in_the_body_and_counts_early_requests() {
    let (client, sim, token) = started(SentinelConfig {
        requests_per_window: 2,
        window: Duration::from_secs(2),
        ..SentinelConfig::default()
    })
    .await;
    let one = body(vec![indicator(1, "2021-01-01T00:00:00Z")]);
    for _ in 0..2 {
        assert_eq!(
            upload(&client, &sim, &token, &one).await.status(),
            StatusCode::OK
        );
    }
    let refused = upload(&client, &sim, &token, &one).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused.headers().get("retry-after").is_none(),
        "the documented 429 has no header"
    );
    let refusal: Value = refused.json().await.unwrap();
    assert_eq!(refusal["statusCode"], 429);
    let message = refusal["message"].as_str().unwrap();
    let secs: u64 = message
        .strip_prefix("Rate limit is exceeded. Try again in ")
        .and_then(|m| m.strip_suffix(" seconds."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("documented wording: {message}"));
    assert!((1..=2).contains(&secs));
    // Coming back before the wait is early (past the 20 ms in-flight tolerance); coming back
    // after the wait is served.
    let early = Instant::now();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        upload(&client, &sim, &token, &one).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(
        Duration::from_secs(secs).saturating_sub(early.elapsed()) + Duration::from_millis(50),
    )
    .await;
    assert_eq!(
        upload(&client, &sim, &token, &one).await.status(),
        StatusCode::OK
    );
    let stats = get_json(&client, &format!("{}/_sim/sentinel/stats", sim.url)).await;
    assert_eq!(stats["stats"]["early_requests"], 1, "{stats}");
    assert_eq!(stats["stats"]["throttled"], 2);
    sim.stop().await.unwrap();

    let (client, sim, token) = started(SentinelConfig {
        requests_per_window: 1,
        retry_after_header: true,
        ..SentinelConfig::default()
    })
    .await;
    upload(&client, &sim, &token, &one).await;
    let refused = upload(&client, &sim, &token, &one).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let header: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&header));
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn injected_500s_store_nothing_and_rejections_are_per_object() {
    let (client, sim, token) = started(SentinelConfig::default()).await;
    let faults = format!("{}/_sim/sentinel/faults", sim.url);
    let set = |v: Value| {
        let (client, faults) = (client.clone(), faults.clone());
        async move {
            let r = client.post(faults).json(&v).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    };
    set(json!({"fail_next": 1})).await;
    let two = body(vec![
        indicator(1, "2021-01-01T00:00:00Z"),
        indicator(2, "2021-01-01T00:00:00Z"),
    ]);
    let failed = upload(&client, &sim, &token, &two).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let failure: Value = failed.json().await.unwrap();
    assert_eq!(failure["message"], "Internal server error");
    assert!(failure["activityId"].is_string());
    assert_eq!(objects(&client, &sim).await["count"], 0);

    set(json!({"reject": ["indicator--00000002-71a2-445c-ab86-927291df48f8"]})).await;
    let partial: Value = upload(&client, &sim, &token, &two)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(partial["errors"].as_array().unwrap().len(), 1);
    assert_eq!(partial["errors"][0]["recordIndex"], 1);
    assert_eq!(objects(&client, &sim).await["count"], 1);
    // Next run, the rejection is gone and the object arrives.
    set(json!({})).await;
    assert_eq!(
        upload(&client, &sim, &token, &two).await.status(),
        StatusCode::OK
    );
    assert_eq!(objects(&client, &sim).await["count"], 2);

    set(json!({"reject_rate": 1.0})).await;
    let all: Value = upload(
        &client,
        &sim,
        &token,
        &body(vec![indicator(7, "2021-01-01T00:00:00Z")]),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(all["errors"][0]["recordIndex"], 0);
    let bad = client
        .post(&faults)
        .json(&json!({"fail_rate": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    sim.stop().await.unwrap();
}
