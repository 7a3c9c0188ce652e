//! The HTTP surface: token endpoint, Graph routes (the pipeline is in `graph`) and the
//! `/_sim/*` control endpoints.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;

use crate::app::App;
use crate::auth;
use crate::conn::ConnInfo;
use crate::graph;
use crate::respond::{Reply, RequestIds, nothing};
use crate::token_faults::TokenFaultKind;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/_sim/stats", get(stats))
        .route("/_sim/requests", get(requests))
        .route("/_sim/reset-stats", post(reset_stats))
        .route("/_sim/expire-tokens", post(expire_tokens))
        .route("/_sim/tokens", get(issued_tokens))
        .route("/v1.0/security/threatIntelligence/{*rest}", any(graph))
        .route("/beta/security/threatIntelligence/{*rest}", any(graph))
        .merge(crate::microsoft::router())
        .fallback(fallback)
        .with_state(app)
}

async fn token(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    Path(tenant): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let arrival = Instant::now();
    app.stats.token_request();
    let mut pending = app.log.begin(None, arrival, "token", uri.path());
    let fault = app.token_faults.next();
    pending.entry().fault = fault.map(TokenFaultKind::name);
    let response = match fault {
        Some(TokenFaultKind::Reset) => {
            conn.kill.kill();
            pending.finish(0, None);
            return nothing();
        }
        Some(TokenFaultKind::Timeout) => {
            tokio::time::sleep(app.config.stall).await;
            TokenFaultKind::Timeout.response()
        }
        Some(kind) => kind.response(),
        None => auth::token_endpoint(
            &app.config.credentials,
            &app.config.microsoft.identity,
            &app.tokens,
            &app.base_url,
            &tenant,
            &body,
            arrival,
        ),
    };
    pending.finish(response.status().as_u16(), None);
    response
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.stats_json()).into_response()
}

async fn requests(State(app): State<Arc<App>>) -> Response {
    Json(app.log.to_json()).into_response()
}

async fn reset_stats(State(app): State<Arc<App>>) -> Response {
    app.reset_stats();
    Json(json!({"reset": true})).into_response()
}

async fn expire_tokens(State(app): State<Arc<App>>) -> Response {
    let expired = app.tokens.expire_all();
    Json(json!({"expired": expired})).into_response()
}

async fn issued_tokens(State(app): State<Arc<App>>) -> Response {
    Json(app.tokens.history()).into_response()
}

async fn fallback(uri: Uri, headers: HeaderMap) -> Response {
    let ids = RequestIds::from_headers(&headers);
    Reply::error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("ctiport-sim serves no resource at '{}'.", uri.path()),
        &ids,
    )
    .into_response(&ids)
}

async fn graph(
    State(app): State<Arc<App>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    graph::serve(&app, &conn, &method, &uri, &headers).await
}
