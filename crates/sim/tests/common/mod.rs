//! Shared by the stand-in tests: start a sim in-process, get tokens.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)] // each test binary uses a part

use ctiport_sim::generate::{Spec, generate_store};
use ctiport_sim::server::{Running, ServeConfig, start};
use reqwest::{Client, StatusCode};
use serde_json::Value;

pub const MANAGEMENT: &str = "https://management.azure.com/.default";
pub const DEFENDER: &str = "https://api.securitycenter.microsoft.com/.default";
pub const GRAPH: &str = "https://graph.microsoft.com/.default";

pub async fn sim(config: ServeConfig) -> Running {
    let store = generate_store(Spec {
        profiles: 1,
        indicators: 0,
        seed: 0,
        ..Spec::default()
    })
    .expect("store");
    start(config, store).await.expect("sim starts")
}

pub fn token_url(sim: &Running) -> String {
    format!("{}/sim-tenant/oauth2/v2.0/token", sim.url)
}

/// POSTs a form to the token endpoint.
pub async fn token_request(
    client: &Client,
    sim: &Running,
    form: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(token_url(sim))
        .form(form)
        .send()
        .await
        .expect("token endpoint reachable")
}

/// A client-secret token for `scope`.
pub async fn token(client: &Client, sim: &Running, scope: &str) -> String {
    let response = token_request(
        client,
        sim,
        &[
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_owned()
}

pub async fn get_json(client: &Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json")
}
