//! The HTTP surface: token endpoint, Graph routes (with the auth → throttle → fault pipeline in
//! front of them) and the `/_sim/*` control endpoints.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::{ALLOW, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;

use crate::auth::{self, TokenProblem};
use crate::conn::ConnInfo;
use crate::faults::FaultKind;
use crate::lock;
use crate::resources::{self, Ctx};
use crate::respond::{Reply, RequestIds, nothing};
use crate::server::{App, Mode};
use crate::target::{self, Resource};
use crate::throttle::retry_after;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/_sim/stats", get(stats))
        .route("/_sim/reset-stats", post(reset_stats))
        .route("/_sim/expire-tokens", post(expire_tokens))
        .route("/_sim/tokens", get(issued_tokens))
        .route("/v1.0/security/threatIntelligence/{*rest}", any(graph))
        .route("/beta/security/threatIntelligence/{*rest}", any(graph))
        .merge(crate::microsoft::router())
        .fallback(fallback)
        .with_state(app)
}

async fn token(State(app): State<Arc<App>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    app.stats.token_request();
    auth::token_endpoint(
        &app.config.credentials,
        &app.config.microsoft.identity,
        &app.tokens,
        &app.base_url,
        &tenant,
        &body,
        Instant::now(),
    )
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.stats.to_json()).into_response()
}

async fn reset_stats(State(app): State<Arc<App>>) -> Response {
    app.stats.reset();
    lock(&app.compliance).clear();
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
    let started = Instant::now();
    let response = handle_graph(&app, &conn, &method, &uri, &headers).await;
    tracing::debug!(
        %method,
        path = uri.path(),
        query = uri.query().unwrap_or(""),
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "graph request"
    );
    response
}

/// Every Graph request: stats, then auth, throttling and faults, then the resource itself.
async fn handle_graph(
    app: &App,
    conn: &ConnInfo,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let ids = RequestIds::from_headers(headers);
    let raw_path = uri.path();
    // The router only sends `/{v1.0|beta}/security/threatIntelligence/{rest}` here.
    let (version, rest) = raw_path
        .trim_start_matches('/')
        .split_once('/')
        .and_then(|(v, r)| Some((v, r.strip_prefix("security/threatIntelligence/")?)))
        .unwrap_or(("v1.0", ""));
    let resource = target::parse(rest);
    let _in_flight = app.stats.graph_request(resource.route_key());
    let number = app.graph_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let now = Instant::now();
    if lock(&app.compliance).is_early(now) {
        app.stats.early_request();
    }

    if let Some(refusal) = gate(app, headers, &ids, now) {
        return refusal.into_response(&ids);
    }

    if matches!(resource, Resource::HostReputation(_))
        && app.dice.chance(app.config.reputation_500_rate)
    {
        // The reputation 500 of §9.11, independent of the general fault plan.
        app.stats.fault(FaultKind::Internal);
        return internal_error(&ids).into_response(&ids);
    }
    let fault = app.config.faults.roll(&app.dice, number);
    if let Some(kind) = fault {
        app.stats.fault(kind);
        tracing::debug!(fault = %kind, path = raw_path, "injecting a fault");
    }
    match fault {
        Some(FaultKind::Unavailable) => return unavailable(app, &ids, now).into_response(&ids),
        Some(FaultKind::GatewayTimeout) => {
            return Reply::error(
                StatusCode::GATEWAY_TIMEOUT,
                "gatewayTimeout",
                "The gateway did not receive a timely response from the upstream service.",
                &ids,
            )
            .into_response(&ids);
        }
        Some(FaultKind::Internal) => return internal_error(&ids).into_response(&ids),
        Some(FaultKind::Reset) => {
            conn.kill.kill();
            return nothing();
        }
        Some(FaultKind::Slow) => tokio::time::sleep(app.config.slow).await,
        Some(FaultKind::Truncate) | None => {}
    }

    let reply = if *method == Method::GET {
        let ctx = Ctx {
            base: &app.base_url,
            version,
            raw_path,
            raw_query: uri.query(),
            page_size: app.config.page_size,
            max_top: app.config.max_top,
        };
        resources::answer(&app.store, &resource, &ctx)
            .unwrap_or_else(|e| Reply::error(e.status, e.code, &e.message, &ids))
    } else {
        // The API is read-only (§1); the SDKs' POST/PATCH/DELETE are CSDL noise.
        Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "notSupported",
            &format!("The HTTP method '{method}' is not supported on this resource."),
            &ids,
        )
        .header(ALLOW, "GET")
    };
    if fault == Some(FaultKind::Truncate) {
        return reply.into_truncated_response(&ids);
    }
    if reply.is_page && reply.status == StatusCode::OK {
        app.stats.served_page();
    }
    reply.into_response(&ids)
}

/// Authentication, licence and throttling, in the order a real gateway applies them.
fn gate(app: &App, headers: &HeaderMap, ids: &RequestIds, now: Instant) -> Option<Reply> {
    let problem = match app.config.mode {
        Mode::Unauthorized => Some(TokenProblem::Unknown),
        _ => app.tokens.check(headers.get(AUTHORIZATION), now).err(),
    };
    if let Some(problem) = problem {
        app.stats.unauthorized();
        return Some(
            Reply::error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                problem.message(),
                ids,
            )
            .header(WWW_AUTHENTICATE, auth::WWW_AUTHENTICATE),
        );
    }
    if app.config.mode == Mode::Forbidden {
        return Some(Reply::error(
            StatusCode::FORBIDDEN,
            "accessDenied",
            "Insufficient privileges to complete the operation. The application needs the ThreatIntelligence.Read.All permission, and the tenant an active Microsoft Defender Threat Intelligence license with the API add-on license.",
            ids,
        ));
    }
    if let Some(bucket) = &app.bucket {
        let taken = lock(bucket).try_take(now);
        if let Err(wait) = taken {
            return Some(throttled(app, ids, wait, now));
        }
    }
    if app.dice.chance(app.config.throttle_storm) {
        // Storm waits are honest but short, so a run under a storm still finishes.
        let wait = app.dice.millis(50, 300);
        return Some(throttled(app, ids, wait, now));
    }
    None
}

/// 429 with `Retry-After` in the configured spelling; the promise is recorded for the
/// early-request check.
fn throttled(app: &App, ids: &RequestIds, wait: std::time::Duration, now: Instant) -> Reply {
    app.stats.throttled();
    let mut reply = Reply::too_many_requests(ids);
    let told = retry_after(wait, app.config.retry_after_format, SystemTime::now());
    if let Some(value) = told.header {
        reply = reply.header(RETRY_AFTER, value);
    }
    if let Some(promised) = told.promised {
        lock(&app.compliance).told(now, now + promised);
    }
    reply
}

/// 503, with a `Retry-After` half of the time (§8.2: "may be specified").
fn unavailable(app: &App, ids: &RequestIds, now: Instant) -> Reply {
    let mut reply = Reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
        ids,
    );
    if app.dice.chance(0.5) {
        let wait = app.dice.millis(100, 1000);
        let told = retry_after(wait, app.config.retry_after_format, SystemTime::now());
        if let Some(value) = told.header {
            reply = reply.header(RETRY_AFTER, value);
        }
        if let Some(promised) = told.promised {
            lock(&app.compliance).told(now, now + promised);
        }
    }
    reply
}

fn internal_error(ids: &RequestIds) -> Reply {
    Reply::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "generalException",
        "An unspecified error has occurred.",
        ids,
    )
}
