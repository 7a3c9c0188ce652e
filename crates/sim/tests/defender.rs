//! The Defender for Endpoint indicators stand-in over HTTP: each documented rule of the
//! import, BatchDelete and list pages, the cap, roles, limits and faults.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic

mod common;

use std::time::Duration;

use common::{DEFENDER, MANAGEMENT, get_json, sim, token};
use ctiport_sim::defender::DefenderConfig;
use ctiport_sim::identity::resource::Roles;
use ctiport_sim::server::{Running, ServeConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

struct Mde {
    client: Client,
    sim: Running,
    token: String,
}

impl Mde {
    async fn start(defender: DefenderConfig) -> Mde {
        Self::start_with_roles(defender, Roles::default()).await
    }

    async fn start_with_roles(defender: DefenderConfig, roles: Roles) -> Mde {
        let mut config = ServeConfig::default();
        config.microsoft.defender = defender;
        config.microsoft.identity.roles = roles;
        let sim = sim(config).await;
        let client = Client::new();
        let token = token(&client, &sim, DEFENDER).await;
        Mde { client, sim, token }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/indicators/{path}", self.sim.url))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn import(&self, indicators: Vec<Value>) -> reqwest::Response {
        self.post("import", &json!({ "Indicators": indicators }))
            .await
    }

    async fn import_results(&self, indicators: Vec<Value>) -> Vec<Value> {
        let response = self.import(indicators).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["value"].as_array().unwrap().clone()
    }

    async fn list(&self, query: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/api/indicators{query}", self.sim.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    async fn inspect(&self) -> Value {
        get_json(
            &self.client,
            &format!("{}/_sim/defender/indicators", self.sim.url),
        )
        .await
    }
}

fn ip(n: u32) -> Value {
    json!({"indicatorValue": format!("203.0.113.{n}"), "indicatorType": "IpAddress", "action": "Alert",
           "title": "t", "description": "d", "application": "ctiport", "severity": "Medium",
           "expirationTime": "2099-01-01T00:00:00Z", "rbacGroupNames": []})
}

#[tokio::test]
async fn documented_sample_imports_and_lists() {
    let mde = Mde::start(DefenderConfig::default()).await;
    // The import page's request sample.
    let sample = vec![
        json!({"indicatorValue": "220e7d15b011d7fac48f2bd61114db1022197f7f", "indicatorType": "FileSha1",
               "title": "demo", "application": "demo-test", "expirationTime": "2099-12-12T00:00:00Z",
               "action": "Alert", "severity": "Informational", "description": "demo2",
               "recommendedActions": "nothing", "rbacGroupNames": ["group1", "group2"]}),
        json!({"indicatorValue": "2233223322332233223322332233223322332233223322332233223322332222",
               "indicatorType": "FileSha256", "title": "demo2", "application": "demo-test2",
               "expirationTime": "2099-12-12T00:00:00Z", "action": "Alert", "severity": "Medium",
               "description": "demo2", "recommendedActions": "nothing", "rbacGroupNames": []}),
    ];
    let results = mde.import_results(sample).await;
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_eq!(r["isFailed"], false);
        assert!(r["failureReason"].is_null());
        assert!(r["id"].as_str().unwrap().parse::<u64>().is_ok());
    }
    assert_eq!(
        results[0]["indicator"],
        "220e7d15b011d7fac48f2bd61114db1022197f7f"
    );
    let listed: Value = mde.list("").await.json().await.unwrap();
    assert!(
        listed["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/api/$metadata#Indicators")
    );
    let first = &listed["value"][0];
    assert_eq!(first["id"], results[0]["id"]);
    assert_eq!(first["indicatorType"], "FileSha1");
    assert_eq!(first["application"], "demo-test");
    assert_eq!(first["sourceType"], "AadApp");
    assert_eq!(first["createdBy"], "sim-client");
    assert_eq!(first["rbacGroupNames"], json!(["group1", "group2"]));
    assert_eq!(first["expirationTime"], "2099-12-12T00:00:00Z");
    sim_stop(mde).await;
}

async fn sim_stop(mde: Mde) {
    mde.sim.stop().await.unwrap();
}

#[tokio::test]
async fn per_indicator_failures_in_a_200() {
    let mde = Mde::start(DefenderConfig::default()).await;
    let mut cidr = ip(1);
    cidr["indicatorValue"] = json!("203.0.113.0/24");
    let mut no_title = ip(2);
    no_title.as_object_mut().unwrap().remove("title");
    let mut audit = ip(3);
    audit["action"] = json!("Audit");
    let mut bad_hash = ip(4);
    bad_hash["indicatorType"] = json!("FileMd5");
    bad_hash["indicatorValue"] = json!("not-a-hash");
    let results = mde
        .import_results(vec![ip(10), cidr, no_title, audit, bad_hash])
        .await;
    let failed: Vec<bool> = results
        .iter()
        .map(|r| r["isFailed"].as_bool().unwrap())
        .collect();
    assert_eq!(failed, [false, true, true, true, true]);
    assert_eq!(
        results[1]["failureReason"],
        "IP address 203.0.113.0/24 is invalid."
    );
    assert_eq!(results[2]["failureReason"], "Parameter title is missing.");
    assert!(
        results[3]["failureReason"]
            .as_str()
            .unwrap()
            .contains("generateAlert")
    );
    assert_eq!(
        results[4]["failureReason"],
        "Hash value not-a-hash is invalid."
    );
    assert_eq!(mde.inspect().await["active"], 1);
    sim_stop(mde).await;
}

#[tokio::test]
async fn oversize_batches_and_bodies() {
    let mde = Mde::start(DefenderConfig {
        max_body_bytes: 300_000,
        ..DefenderConfig::default()
    })
    .await;
    let batch: Vec<Value> = (0..501)
        .map(|n| {
            let mut i = ip(0);
            i["indicatorValue"] = json!(format!("198.51.{}.{}", n / 250, n % 250));
            i
        })
        .collect();
    let response = mde.import(batch.clone()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "MaximumBatchSizeExceeded");
    assert_eq!(
        error["error"]["message"],
        "Maximum batch size exceeded. Received: 501, allowed: 500."
    );
    assert!(error["error"]["target"].is_string());
    let five_hundred: Vec<Value> = batch[..500].to_vec();
    assert_eq!(mde.import_results(five_hundred).await.len(), 500);
    let mut huge = ip(1);
    huge["description"] = json!("x".repeat(400_000));
    assert_eq!(
        mde.import(vec![huge]).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    sim_stop(mde).await;
}

#[tokio::test]
async fn resubmitting_updates_in_place_and_keeps_the_application() {
    let mde = Mde::start(DefenderConfig::default()).await;
    let first = mde.import_results(vec![ip(5)]).await;
    let mut changed = ip(5);
    changed["action"] = json!("Block");
    changed["application"] = json!("renamed");
    let second = mde.import_results(vec![changed]).await;
    assert_eq!(first[0]["id"], second[0]["id"]);
    let view = mde.inspect().await;
    assert_eq!(view["active"], 1);
    assert_eq!(view["indicators"][0]["action"], "Block");
    assert_eq!(
        view["indicators"][0]["application"], "ctiport",
        "application is not updated"
    );
    sim_stop(mde).await;
}

#[tokio::test]
async fn list_filter_top_and_paging() {
    let mde = Mde::start(DefenderConfig {
        foreign: 2,
        ..DefenderConfig::default()
    })
    .await;
    mde.import_results((1..=5).map(ip).collect()).await;
    let q = |filter: &str| format!("?$filter={}", urlencode(filter));
    let mine: Value = mde
        .list(&q(
            "application eq 'ctiport' and indicatorType eq 'IpAddress'",
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["value"].as_array().unwrap().len(), 5);
    let theirs: Value = mde
        .list(&q("application ne 'ctiport'"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["value"].as_array().unwrap().len(), 2);
    let one: Value = mde
        .list(&q("indicatorValue eq '203.0.113.3'"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["value"][0]["indicatorValue"], "203.0.113.3");

    let page: Value = mde
        .list(&format!("{}&$top=2", q("application eq 'ctiport'")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let mut seen = 2;
    let mut next = page["@odata.nextLink"].as_str().map(str::to_owned);
    while let Some(url) = next {
        let page: Value = mde
            .client
            .get(&url)
            .bearer_auth(&mde.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen += page["value"].as_array().unwrap().len();
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 5);

    let over = mde.list("?$top=10001").await;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        over.json::<Value>().await.unwrap()["error"]["code"],
        "ODataError"
    );
    assert_eq!(mde.list("?$top=10000").await.status(), StatusCode::OK);
    assert_eq!(
        mde.list(&q("nosuch eq 'x'")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        mde.list("?$orderby=id").await.status(),
        StatusCode::BAD_REQUEST
    );
    sim_stop(mde).await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn the_cap_counts_every_tool_and_foreign_indicators_stay_untouched() {
    let mde = Mde::start(DefenderConfig {
        cap: 5,
        foreign: 3,
        ..DefenderConfig::default()
    })
    .await;
    let results = mde.import_results((1..=3).map(ip).collect()).await;
    let failed: Vec<bool> = results
        .iter()
        .map(|r| r["isFailed"].as_bool().unwrap())
        .collect();
    assert_eq!(failed, [false, false, true]);
    assert!(
        results[2]["failureReason"]
            .as_str()
            .unwrap()
            .contains("limit of 5 active indicators")
    );
    let view = mde.inspect().await;
    assert_eq!(view["by_application"]["Contoso SOC"], 3);
    assert_eq!(view["by_application"]["ctiport"], 2);
    assert_eq!(view["foreign_writes"], json!([]));
    // Deleting one of ours frees a place.
    let id = results[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        mde.post("BatchDelete", &json!({"IndicatorIds": [id]}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(mde.import_results(vec![ip(3)]).await[0]["isFailed"], false);

    // With Ti.ReadWrite.All a write to another tool's indicator goes through, and is recorded.
    let foreign_id = view["indicators"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        mde.post("BatchDelete", &json!({"IndicatorIds": [foreign_id]}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let after = mde.inspect().await;
    assert_eq!(after["foreign_writes"][0]["operation"], "delete");
    assert_eq!(after["foreign_writes"][0]["application"], "Contoso SOC");
    sim_stop(mde).await;
}

#[tokio::test]
async fn roles_decide_what_an_app_sees_and_may_do() {
    let none = Mde::start_with_roles(
        DefenderConfig::default(),
        Roles {
            graph: vec![],
            defender: vec![],
        },
    )
    .await;
    let refused = none.list("").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        "Forbidden"
    );
    sim_stop(none).await;

    let own = Mde::start_with_roles(
        DefenderConfig {
            foreign: 2,
            ..DefenderConfig::default()
        },
        Roles {
            graph: vec![],
            defender: vec!["Ti.ReadWrite".into()],
        },
    )
    .await;
    own.import_results(vec![ip(1)]).await;
    let listed: Value = own.list("").await.json().await.unwrap();
    assert_eq!(
        listed["value"].as_array().unwrap().len(),
        1,
        "only its own indicators"
    );
    let foreign_id = own.inspect().await["indicators"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delete = own
        .post("BatchDelete", &json!({"IndicatorIds": [foreign_id]}))
        .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(own.inspect().await["active"], 3);
    sim_stop(own).await;
}

#[tokio::test]
async fn batch_delete_is_all_or_nothing() {
    let mde = Mde::start(DefenderConfig::default()).await;
    let ids: Vec<String> = mde
        .import_results((1..=3).map(ip).collect())
        .await
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let missing = mde
        .post("BatchDelete", &json!({"IndicatorIds": [ids[0], "999999"]}))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "ResourceNotFound"
    );
    assert_eq!(mde.inspect().await["active"], 3, "nothing deleted");
    for bad in [
        json!({"IndicatorIds": []}),
        json!({"IndicatorIds": ["x"]}),
        json!({"ids": ["1"]}),
    ] {
        assert_eq!(
            mde.post("BatchDelete", &bad).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    let too_many: Vec<String> = (0..501).map(|n| n.to_string()).collect();
    assert_eq!(
        mde.post("BatchDelete", &json!({"IndicatorIds": too_many}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    let ok = mde
        .post("BatchDelete", &json!({"IndicatorIds": [ids[0], ids[1]]}))
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(mde.inspect().await["active"], 1);
    sim_stop(mde).await;
}

#[tokio::test]
async fn limits_faults_audience_and_expiry() {
    let mde = Mde::start(DefenderConfig {
        import_per_window: 2,
        window: Duration::from_secs(30),
        ..DefenderConfig::default()
    })
    .await;
    mde.import_results(vec![ip(1)]).await;
    mde.import_results(vec![ip(2)]).await;
    let throttled = mde.import(vec![ip(3)]).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&wait));
    assert_eq!(
        throttled.json::<Value>().await.unwrap()["error"]["code"],
        "TooManyRequests"
    );
    // The list has its own budget.
    assert_eq!(mde.list("").await.status(), StatusCode::OK);
    sim_stop(mde).await;

    let mde = Mde::start(DefenderConfig::default()).await;
    let faults = format!("{}/_sim/defender/faults", mde.sim.url);
    mde.client
        .post(&faults)
        .json(&json!({"fail_next": 1}))
        .send()
        .await
        .unwrap();
    let failed = mde.import(vec![ip(1)]).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        failed.json::<Value>().await.unwrap()["error"]["code"],
        "InternalServerError"
    );
    assert_eq!(mde.inspect().await["active"], 0);
    mde.client
        .post(&faults)
        .json(&json!({"reject": ["203.0.113.2"]}))
        .send()
        .await
        .unwrap();
    let results = mde.import_results(vec![ip(1), ip(2)]).await;
    assert_eq!(results[0]["isFailed"], false);
    assert_eq!(results[1]["isFailed"], true);

    // An indicator whose expirationTime has passed is not active: not listed, not counted.
    let mut expired = ip(9);
    expired["expirationTime"] = json!("2000-01-01T00:00:00Z");
    mde.import_results(vec![expired]).await;
    let view = mde.inspect().await;
    assert_eq!(view["active"], 1);
    assert_eq!(view["expired_removed"], 1);

    // A management token is for another API.
    let management = token(&mde.client, &mde.sim, MANAGEMENT).await;
    let wrong = mde
        .client
        .get(format!("{}/api/indicators", mde.sim.url))
        .bearer_auth(management)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"]["code"],
        "Unauthorized"
    );
    sim_stop(mde).await;
}
