//! The Microsoft stand-ins beside the Graph one: Sentinel's STIX upload API, Defender for
//! Endpoint's indicators API, and the identity endpoints (managed identity, federated tokens).
//! They share the sim's token store, so each API checks the audience and roles of the tokens
//! the sim's token endpoint issued. See docs/standins.md.

pub mod args;
pub mod faults;
pub mod stamp;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::unix_now;
use crate::defender::{self, Call, Defender, DefenderConfig};
use crate::identity::IdentityConfig;
use crate::identity::federation::MintRequest;
use crate::identity::managed::{self, Form};
use crate::sentinel::{self, Sentinel, SentinelConfig};
use faults::Faults;

/// Configuration of the Microsoft stand-ins (`ServeConfig::microsoft`).
#[derive(Clone, Debug, Default)]
pub struct MicrosoftConfig {
    pub identity: IdentityConfig,
    pub sentinel: SentinelConfig,
    pub defender: DefenderConfig,
}

/// Their run-time state (`App::microsoft`).
#[derive(Debug)]
pub struct Microsoft {
    pub sentinel: Sentinel,
    pub defender: Defender,
}

impl Microsoft {
    pub fn new(config: &MicrosoftConfig, seed: u64, early_tolerance: Duration) -> Self {
        Microsoft {
            sentinel: Sentinel::new(config.sentinel.clone(), seed, early_tolerance),
            defender: Defender::new(config.defender.clone(), seed, early_tolerance),
        }
    }
}

/// Sentinel's request bodies above this get 413 (100 objects fit many times over).
const SENTINEL_MAX_BODY: usize = 16 * 1024 * 1024;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/workspaces/{workspace}/{action}", post(sentinel_upload))
        .route("/_sim/sentinel/stats", get(sentinel_stats))
        .route("/_sim/sentinel/faults", post(sentinel_faults))
        .route("/_sim/sentinel/reset", post(sentinel_reset))
        .route("/_sim/sentinel/{workspace}/objects", get(sentinel_objects))
        .route("/api/indicators", get(defender_list))
        .route("/api/indicators/import", post(defender_import))
        .route("/api/indicators/BatchDelete", post(defender_delete))
        .route("/_sim/defender/indicators", get(defender_inspect))
        .route("/_sim/defender/stats", get(defender_stats))
        .route("/_sim/defender/faults", post(defender_faults))
        .route("/_sim/defender/seed", post(defender_seed))
        .route("/_sim/defender/reset", post(defender_reset))
        .route("/metadata/identity/oauth2/token", get(imds))
        .route("/msi/token", get(app_service))
        .route("/_sim/federated-token", post(federated_token))
        .route("/_sim/identity/grants", get(grants))
}

/// The body, or the 413 a too large one gets.
async fn read_body(
    body: Body,
    limit: usize,
    too_large: impl FnOnce() -> Response,
) -> Result<Vec<u8>, Box<Response>> {
    axum::body::to_bytes(body, limit)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| Box::new(too_large()))
}

async fn sentinel_upload(
    State(app): State<Arc<App>>,
    Path((workspace, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if action != sentinel::UPLOAD_ACTION {
        return StatusCode::NOT_FOUND.into_response();
    }
    let body = match read_body(body, SENTINEL_MAX_BODY, || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"statusCode": 413, "message": "Request entity too large."})),
        )
            .into_response()
    })
    .await
    {
        Ok(body) => body,
        Err(response) => return *response,
    };
    app.microsoft.sentinel.upload(
        &app.tokens,
        &workspace,
        query.as_deref(),
        &headers,
        &body,
        Instant::now(),
    )
}

async fn sentinel_objects(State(app): State<Arc<App>>, Path(workspace): Path<String>) -> Response {
    match app.microsoft.sentinel.inspect(&workspace) {
        Some(view) => Json(view).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no workspace '{workspace}'")})),
        )
            .into_response(),
    }
}

async fn sentinel_stats(State(app): State<Arc<App>>) -> Response {
    Json(app.microsoft.sentinel.stats()).into_response()
}

/// Parses a `Faults` body; the reason it is refused otherwise.
fn faults_from(body: &[u8]) -> Result<Faults, String> {
    let faults: Faults = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    faults.valid()?;
    Ok(faults)
}

fn bad_faults(reason: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": reason }))).into_response()
}

async fn sentinel_faults(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match faults_from(&body) {
        Ok(faults) => {
            app.microsoft.sentinel.set_faults(faults);
            Json(app.microsoft.sentinel.stats()).into_response()
        }
        Err(reason) => bad_faults(reason),
    }
}

async fn sentinel_reset(State(app): State<Arc<App>>) -> Response {
    app.microsoft.sentinel.reset();
    Json(json!({"reset": true})).into_response()
}

async fn defender_call(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    call: Call,
) -> Result<(crate::auth::Grant, Vec<u8>), Box<Response>> {
    let defender = &app.microsoft.defender;
    let grant = defender.gate(&app.tokens, headers, call, Instant::now())?;
    let limit = defender.max_body_bytes();
    let body = read_body(body, limit, || {
        defender::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("The request body exceeds {limit} bytes."),
        )
    })
    .await?;
    Ok((grant, body))
}

async fn defender_import(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match defender_call(&app, &headers, body, Call::Import).await {
        Ok((grant, body)) => app.microsoft.defender.import(&grant, &body),
        Err(response) => *response,
    }
}

async fn defender_delete(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    match defender_call(&app, &headers, body, Call::BatchDelete).await {
        Ok((grant, body)) => app.microsoft.defender.batch_delete(&grant, &body),
        Err(response) => *response,
    }
}

async fn defender_list(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match defender_call(&app, &headers, Body::empty(), Call::List).await {
        Ok((grant, _)) => app
            .microsoft
            .defender
            .list(&grant, &app.base_url, query.as_deref()),
        Err(response) => *response,
    }
}

async fn defender_inspect(State(app): State<Arc<App>>) -> Response {
    Json(app.microsoft.defender.inspect()).into_response()
}

async fn defender_stats(State(app): State<Arc<App>>) -> Response {
    Json(app.microsoft.defender.stats()).into_response()
}

async fn defender_faults(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    match faults_from(&body) {
        Ok(faults) => {
            app.microsoft.defender.set_faults(faults);
            Json(app.microsoft.defender.stats()).into_response()
        }
        Err(reason) => bad_faults(reason),
    }
}

async fn defender_seed(State(app): State<Arc<App>>, Json(body): Json<Value>) -> Response {
    match app.microsoft.defender.seed(&body) {
        Ok(ids) => {
            Json(json!({"ids": ids.iter().map(u64::to_string).collect::<Vec<_>>()})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn defender_reset(State(app): State<Arc<App>>) -> Response {
    app.microsoft.defender.reset();
    Json(json!({"reset": true})).into_response()
}

fn managed_token(app: &App, form: Form, query: Option<&str>, headers: &HeaderMap) -> Response {
    app.stats.token_request();
    managed::token(
        form,
        &app.config.microsoft.identity,
        &app.tokens,
        &app.config.credentials.tenant,
        query,
        headers,
        Instant::now(),
    )
}

async fn imds(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    managed_token(&app, Form::Imds, query.as_deref(), &headers)
}

async fn app_service(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    managed_token(&app, Form::AppService, query.as_deref(), &headers)
}

/// `POST /_sim/federated-token[?subject=&audience=&issuer=&ttl=]`: a token from the sim's
/// federated issuer, as text (write it to `AZURE_FEDERATED_TOKEN_FILE`).
async fn federated_token(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let Some(federation) = app.config.microsoft.identity.federation.clone() else {
        return (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": "no federated credential: start the sim with --federated-subject"}),
            ),
        )
            .into_response();
    };
    let request: MintRequest = match mint_request(query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    };
    // Generating the issuer key on first use is CPU work: keep it off the async workers.
    let minted = tokio::task::spawn_blocking(move || federation.mint(&request, unix_now())).await;
    match minted {
        Ok(Ok(token)) => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], token).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn mint_request(query: &str) -> Result<MintRequest, String> {
    let mut request = MintRequest::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "issuer" => request.issuer = Some(value),
            "subject" => request.subject = Some(value),
            "audience" => request.audience = Some(value),
            "ttl" => {
                request.ttl = Some(
                    value
                        .parse()
                        .map_err(|_| format!("ttl '{value}' is not an integer"))?,
                );
            }
            other => return Err(format!("unknown parameter '{other}'")),
        }
    }
    Ok(request)
}

async fn grants(State(app): State<Arc<App>>) -> Response {
    Json(app.tokens.grants()).into_response()
}
