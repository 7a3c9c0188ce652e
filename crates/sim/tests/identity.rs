//! The identity stand-ins over HTTP: certificate assertions (RFC 7523) checked as Entra's
//! certificate-credentials page describes, federated tokens, the two managed-identity forms,
//! tokens per API, and `gen-cert`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic

mod common;

use std::sync::OnceLock;

use common::{DEFENDER, GRAPH, MANAGEMENT, get_json, sim, token, token_request, token_url};
use ctiport_sim::auth::unix_now;
use ctiport_sim::identity::cert::RegisteredCert;
use ctiport_sim::identity::gencert::{CertSpec, Generated, generate};
use ctiport_sim::identity::jwt::{self, Alg};
use ctiport_sim::server::{Running, ServeConfig};
use reqwest::{Client, StatusCode};
use rsa::PrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use serde_json::{Map, Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn spec(expired: bool) -> CertSpec {
    CertSpec {
        common_name: "identity test".into(),
        days: 30,
        expired,
        pfx_password: "pw".into(),
    }
}

type KeyPair = (Generated, PrivateKey);

/// Keys take a moment to generate: each kind once per test binary.
fn keypair(cell: &'static OnceLock<KeyPair>, expired: bool) -> &'static KeyPair {
    cell.get_or_init(|| {
        let g = generate(&spec(expired)).unwrap();
        let key = PrivateKey::from_pkcs8_pem(&g.key_pem).unwrap();
        (g, key)
    })
}

/// The certificate registered on the app.
fn registered() -> &'static KeyPair {
    static CELL: OnceLock<KeyPair> = OnceLock::new();
    keypair(&CELL, false)
}

/// A valid certificate the app does not know.
fn unregistered() -> &'static KeyPair {
    static CELL: OnceLock<KeyPair> = OnceLock::new();
    keypair(&CELL, false)
}

/// Registered, but its validity ended yesterday.
fn expired_cert() -> &'static KeyPair {
    static CELL: OnceLock<KeyPair> = OnceLock::new();
    keypair(&CELL, true)
}

async fn start() -> (Client, Running) {
    let mut config = ServeConfig::default();
    let identity = &mut config.microsoft.identity;
    identity.certificates = vec![registered().0.cert.clone(), expired_cert().0.cert.clone()];
    identity.managed.user_assigned = vec!["user-assigned-1".into()];
    identity.federation = Some(std::sync::Arc::new(
        ctiport_sim::identity::federation::Federation::new(
            "https://oidc.example.test/".into(),
            "system:serviceaccount:ctiport:ctiport".into(),
            "api://AzureADTokenExchange".into(),
            None,
        ),
    ));
    (Client::new(), sim(config).await)
}

/// The claims Entra's page lists, valid for ten minutes.
fn claims(sim: &Running) -> Map<String, Value> {
    let now = unix_now();
    let v = json!({"aud": token_url(sim), "iss": "sim-client", "sub": "sim-client",
                   "jti": "00aa00aa-bb11-cc22-dd33-44ee44ee44ee", "nbf": now, "iat": now, "exp": now + 600});
    v.as_object().unwrap().clone()
}

fn thumbprints(cert: &RegisteredCert, sha1: bool, sha256: bool) -> Map<String, Value> {
    let mut h = Map::new();
    if sha1 {
        h.insert("x5t".into(), json!(cert.x5t));
    }
    if sha256 {
        h.insert("x5t#S256".into(), json!(cert.x5t_s256));
    }
    h
}

async fn with_assertion(
    client: &Client,
    sim: &Running,
    assertion: &str,
    scope: &str,
) -> reqwest::Response {
    token_request(
        client,
        sim,
        &[
            ("client_id", "sim-client"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ],
    )
    .await
}

/// The AADSTS code of a refusal, after checking the Entra error body's shape.
async fn refusal(response: reqwest::Response) -> (StatusCode, u64, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let code = body["error_codes"][0]
        .as_u64()
        .unwrap_or_else(|| panic!("{body}"));
    let description = body["error_description"].as_str().unwrap().to_owned();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    (status, code, description)
}

#[tokio::test]
async fn certificate_assertions_rs256_x5t_and_ps256_x5t_s256() {
    let (client, sim) = start().await;
    let (cert, key) = registered();
    let rs = jwt::sign(
        Alg::Rs256,
        &thumbprints(&cert.cert, true, false),
        &claims(&sim),
        key,
    )
    .unwrap();
    let response = with_assertion(&client, &sim, &rs, MANAGEMENT).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["expires_in"].is_u64(),
        "a number on the token endpoint"
    );
    let ps = jwt::sign(
        Alg::Ps256,
        &thumbprints(&cert.cert, false, true),
        &claims(&sim),
        key,
    )
    .unwrap();
    assert_eq!(
        with_assertion(&client, &sim, &ps, DEFENDER).await.status(),
        StatusCode::OK
    );
    let grants: Value = get_json(&client, &format!("{}/_sim/identity/grants", sim.url)).await;
    assert_eq!(grants[0]["credential"], "client_certificate");
    assert_eq!(grants[0]["api"], "management");
    assert_eq!(grants[1]["api"], "defender");
    assert_eq!(grants[1]["roles"], json!(["Ti.ReadWrite.All"]));
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn bad_certificate_assertions_get_entra_codes() {
    let (client, sim) = start().await;
    let (cert, key) = registered();
    let good_header = thumbprints(&cert.cert, true, true);
    let sign = |header: &Map<String, Value>, claims: &Map<String, Value>, key: &PrivateKey| {
        jwt::sign(Alg::Rs256, header, claims, key).unwrap()
    };
    let cases: Vec<(&str, String, u64)> = vec![
        // Another certificate, not registered on the app.
        (
            "wrong certificate",
            sign(
                &thumbprints(&unregistered().0.cert, true, false),
                &claims(&sim),
                &unregistered().1,
            ),
            700_027,
        ),
        // The registered thumbprint, but signed with another key.
        (
            "bad signature",
            sign(&good_header, &claims(&sim), &unregistered().1),
            700_027,
        ),
        (
            "registered but expired certificate",
            sign(
                &thumbprints(&expired_cert().0.cert, true, false),
                &claims(&sim),
                &expired_cert().1,
            ),
            700_027,
        ),
        (
            "no thumbprint",
            sign(&Map::new(), &claims(&sim), key),
            50_027,
        ),
        (
            "expired assertion",
            {
                let mut c = claims(&sim);
                c.insert("exp".into(), json!(unix_now() - 60));
                sign(&good_header, &c, key)
            },
            700_024,
        ),
        (
            "not yet valid",
            {
                let mut c = claims(&sim);
                c.insert("nbf".into(), json!(unix_now() + 300));
                sign(&good_header, &c, key)
            },
            700_024,
        ),
        (
            "bad audience",
            {
                let mut c = claims(&sim);
                c.insert(
                    "aud".into(),
                    json!("https://login.microsoftonline.com/other/oauth2/v2.0/token"),
                );
                sign(&good_header, &c, key)
            },
            700_023,
        ),
        (
            "sub is not iss",
            {
                let mut c = claims(&sim);
                c.insert("sub".into(), json!("someone-else"));
                sign(&good_header, &c, key)
            },
            50_048,
        ),
        (
            "no jti",
            {
                let mut c = claims(&sim);
                c.remove("jti");
                sign(&good_header, &c, key)
            },
            50_027,
        ),
        ("not a JWT", "not.a-jwt".into(), 50_027),
    ];
    for (what, assertion, expected) in cases {
        let response = with_assertion(&client, &sim, &assertion, MANAGEMENT).await;
        let (status, code, description) = refusal(response).await;
        assert_eq!(
            (status, code),
            (StatusCode::UNAUTHORIZED, expected),
            "{what}: {description}"
        );
        assert!(
            !description.contains(&assertion),
            "{what}: the assertion is not echoed"
        );
    }
    let (_, _, description) = refusal(
        with_assertion(
            &client,
            &sim,
            &sign(&good_header, &claims(&sim), &unregistered().1),
            MANAGEMENT,
        )
        .await,
    )
    .await;
    assert!(
        description.contains("did not match the expected signature"),
        "{description}"
    );
    let wrong_type = token_request(
        &client,
        &sim,
        &[
            ("client_id", "sim-client"),
            ("client_assertion_type", "urn:other"),
            ("client_assertion", "x.y.z"),
            ("scope", MANAGEMENT),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    assert!(
        get_json(&client, &format!("{}/_sim/identity/grants", sim.url))
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn federated_tokens_from_the_sims_issuer() {
    let (client, sim) = start().await;
    let mint = |query: &'static str| {
        let client = client.clone();
        let url = format!("{}/_sim/federated-token{query}", sim.url);
        async move {
            let r = client.post(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    let good = mint("").await;
    let parsed = jwt::parse(&good).unwrap();
    assert_eq!(parsed.claim_str("iss"), Some("https://oidc.example.test/"));
    assert_eq!(parsed.audiences(), ["api://AzureADTokenExchange"]);
    assert_eq!(
        with_assertion(&client, &sim, &good, GRAPH).await.status(),
        StatusCode::OK
    );
    let grants = get_json(&client, &format!("{}/_sim/identity/grants", sim.url)).await;
    assert_eq!(grants[0]["credential"], "federated_token");

    let (status, code, _) = refusal(
        with_assertion(
            &client,
            &sim,
            &mint("?subject=system:serviceaccount:other:x").await,
            GRAPH,
        )
        .await,
    )
    .await;
    assert_eq!((status, code), (StatusCode::BAD_REQUEST, 70_021));
    let (_, code, _) =
        refusal(with_assertion(&client, &sim, &mint("?audience=api://other").await, GRAPH).await)
            .await;
    assert_eq!(code, 70_021);
    let (_, code, _) =
        refusal(with_assertion(&client, &sim, &mint("?ttl=-30").await, GRAPH).await).await;
    assert_eq!(code, 700_024);
    // Same claims, signed by a key that is not the issuer's.
    let forged = jwt::sign(Alg::Rs256, &Map::new(), &parsed.claims, &unregistered().1).unwrap();
    let (_, code, _) = refusal(with_assertion(&client, &sim, &forged, GRAPH).await).await;
    assert_eq!(code, 700_027);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn tokens_are_for_one_api_each() {
    let (client, sim) = start().await;
    let management = token(&client, &sim, MANAGEMENT).await;
    let graph = token(&client, &sim, GRAPH).await;
    let profiles = format!("{}/v1.0/security/threatIntelligence/intelProfiles", sim.url);
    let get = |url: &str, token: &str| client.get(url).bearer_auth(token).send();
    assert_eq!(
        get(&profiles, &graph).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&profiles, &management).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let indicators = format!("{}/api/indicators", sim.url);
    assert_eq!(
        get(&indicators, &graph).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let unknown = token_request(
        &client,
        &sim,
        &[
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("scope", "https://vault.azure.net/.default"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(refusal(unknown).await.1, 500_011);
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn imds_form() {
    let (client, sim) = start().await;
    let url = |query: &str| format!("{}/metadata/identity/oauth2/token?{query}", sim.url);
    let ok = client
        .get(url(
            "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    // Every member is a string, as the documented sample shows.
    for member in [
        "access_token",
        "refresh_token",
        "expires_in",
        "expires_on",
        "not_before",
        "resource",
        "token_type",
    ] {
        assert!(body[member].is_string(), "{member}: {body}");
    }
    assert_eq!(body["resource"], "https://management.azure.com/");
    assert!(body["expires_on"].as_str().unwrap().parse::<i64>().unwrap() > unix_now());
    let upload = format!(
        "{}/workspaces/sim-workspace/threat-intelligence-stix-objects:upload?api-version=2024-02-01-preview",
        sim.url
    );
    let sent = client
        .post(upload)
        .bearer_auth(body["access_token"].as_str().unwrap())
        .json(
            &json!({"sourcesystem": "ctiport", "stixobjects": [{"type": "identity", "name": "x",
            "id": "identity--733c5838-34d9-4fbf-949c-62aba761184c",
            "created": "2016-08-23T18:05:49.307Z", "modified": "2016-08-23T18:05:49.307Z"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.status(),
        StatusCode::OK,
        "a managed-identity token works on Sentinel"
    );

    let without = client
        .get(url(
            "api-version=2018-02-01&resource=https://management.azure.com/",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::BAD_REQUEST);
    let refusal: Value = without.json().await.unwrap();
    assert_eq!(
        refusal,
        json!({"error": "bad_request_102", "error_description": "Required metadata header not specified"})
    );
    let upper = client
        .get(url(
            "api-version=2018-02-01&resource=https://management.azure.com/",
        ))
        .header("Metadata", "True")
        .send()
        .await
        .unwrap();
    assert_eq!(
        upper.status(),
        StatusCode::BAD_REQUEST,
        "the value must be lower-case true"
    );

    let with = |query: &str| client.get(url(query)).header("Metadata", "true").send();
    let user = with("api-version=2018-02-01&resource=https://api.securitycenter.microsoft.com&client_id=user-assigned-1").await.unwrap();
    assert_eq!(user.status(), StatusCode::OK);
    let unknown_id =
        with("api-version=2018-02-01&resource=https://management.azure.com/&client_id=nope")
            .await
            .unwrap();
    assert_eq!(unknown_id.status(), StatusCode::BAD_REQUEST);
    let bad_resource = with("api-version=2018-02-01&resource=https://vault.azure.net")
        .await
        .unwrap();
    assert_eq!(
        bad_resource.json::<Value>().await.unwrap()["error"],
        "invalid_resource"
    );
    assert_eq!(
        with("resource=https://management.azure.com/")
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let grants = get_json(&client, &format!("{}/_sim/identity/grants", sim.url)).await;
    assert_eq!(grants[0]["credential"], "managed_identity_imds");
    assert_eq!(grants[0]["client_id"], "sim-managed-identity");
    assert_eq!(grants[1]["client_id"], "user-assigned-1");
    sim.stop().await.unwrap();
}

#[tokio::test]
async fn app_service_form() {
    let (client, sim) = start().await;
    let url = |query: &str| format!("{}/msi/token?{query}", sim.url);
    let ok = client
        .get(url(
            "resource=https://api.securitycenter.microsoft.com&api-version=2019-08-01",
        ))
        .header("X-IDENTITY-HEADER", "sim-identity-header")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert!(body["expires_on"].is_string());
    assert_eq!(body["client_id"], "sim-managed-identity");
    assert_eq!(body["token_type"], "Bearer");
    let listed = client
        .get(format!("{}/api/indicators", sim.url))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    let wrong = client
        .get(url(
            "resource=https://management.azure.com&api-version=2019-08-01",
        ))
        .header("X-IDENTITY-HEADER", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json::<Value>().await.unwrap()["statusCode"], 400);
    let missing = client
        .get(url(
            "resource=https://management.azure.com&api-version=2019-08-01",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let old = client
        .get(url(
            "resource=https://management.azure.com&api-version=2017-09-01",
        ))
        .header("X-IDENTITY-HEADER", "sim-identity-header")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    sim.stop().await.unwrap();
}

#[test]
fn gen_cert_writes_pem_and_a_pfx_that_opens_with_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ctiport-sim"))
            .args(["gen-cert", "--out"])
            .arg(dir.path())
            .args(extra)
            .env("CTIPORT_SIM_PFX_PASSWORD", "s3cret")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_pem = RegisteredCert::load(&dir.path().join("combined.pem")).unwrap();
    assert_eq!(line["x5t"], json!(from_pem.x5t));
    assert_eq!(line["x5t#S256"], json!(from_pem.x5t_s256));
    let key =
        ctiport_sim::identity::cert::load_private_key(&dir.path().join("combined.pem")).unwrap();
    assert_eq!(key.to_public_key(), from_pem.key);

    let pfx = std::fs::read(dir.path().join("cert.pfx")).unwrap();
    assert!(
        p12_keystore::KeyStore::from_pkcs12(
            &pfx,
            "wrong",
            p12_keystore::Pkcs12ImportPolicy::Strict
        )
        .is_err()
    );
    let store = p12_keystore::KeyStore::from_pkcs12(
        &pfx,
        "s3cret",
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    let in_pfx = RegisteredCert::from_der(chain.certs()[0].as_der()).unwrap();
    assert_eq!(in_pfx.x5t, from_pem.x5t);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!run(&[]).status.success(), "no silent overwrite");
    assert!(run(&["--force"]).status.success());
}
