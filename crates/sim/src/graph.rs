//! Every Graph request: counted and logged, delayed by `--latency-ms`, then authentication,
//! licence, throttling and faults in front of the resource itself (docs/sim.md, "The request
//! pipeline").

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use axum::http::header::{ALLOW, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

use crate::app::{App, Mode};
use crate::auth::{self, TokenProblem};
use crate::conn::ConnInfo;
use crate::faults::FaultKind;
use crate::lock;
use crate::reqlog::Entry;
use crate::resources::{self, Ctx};
use crate::respond::{Reply, RequestIds, nothing};
use crate::target::{self, Resource, remove_dot_segments};
use crate::throttle::retry_after;

/// Answers one Graph request and records it in the stats and the request log.
pub async fn serve(
    app: &App,
    conn: &ConnInfo,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let arrival = Instant::now();
    let path = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let mut pending = app.log.begin(Some(&app.stats), arrival, "other", path);
    let response = answer(app, conn, method, uri, headers, arrival, pending.entry()).await;
    let status = if pending.entry().fault == Some(FaultKind::Reset.name()) {
        0
    } else {
        response.status().as_u16()
    };
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    pending.finish(status, retry_after);
    tracing::debug!(
        %method,
        path = uri.path(),
        query = uri.query().unwrap_or(""),
        status,
        elapsed_ms = arrival.elapsed().as_millis() as u64,
        "graph request"
    );
    response
}

async fn answer(
    app: &App,
    conn: &ConnInfo,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    arrival: Instant,
    logged: &mut Entry,
) -> Response {
    let ids = RequestIds::from_headers(headers);
    let path = remove_dot_segments(uri.path());
    // The router only sends `/{v1.0|beta}/security/threatIntelligence/{rest}` here, but dot
    // segments may have led the path out of it.
    let Some((version, rest)) = path
        .trim_start_matches('/')
        .split_once('/')
        .and_then(|(v, r)| Some((v, r.strip_prefix("security/threatIntelligence/")?)))
    else {
        let _in_flight = app.stats.graph_request("other");
        return Reply::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("ctiport-sim serves no resource at '{path}'."),
            &ids,
        )
        .into_response(&ids);
    };
    let resource = target::parse(rest);
    logged.route = resource.route_key();
    let _in_flight = app.stats.graph_request(logged.route);
    let number = app.graph_requests.fetch_add(1, Ordering::SeqCst) + 1;
    // Early or not is a matter of when the client sent the request: judged on arrival.
    if lock(&app.compliance).is_early(arrival) {
        logged.early = true;
        app.stats.early_request();
    }
    let latency = app.config.latency.draw(&app.dice);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let now = Instant::now();

    if let Some(refusal) = gate(app, headers, &ids, number, now, logged) {
        return refusal.into_response(&ids);
    }

    if matches!(resource, Resource::HostReputation(_))
        && app.dice.chance(app.config.reputation_500_rate)
    {
        // The reputation 500 of §9.11, independent of the general fault plan.
        app.stats.fault(FaultKind::Internal);
        logged.fault = Some(FaultKind::Internal.name());
        return internal_error(&ids).into_response(&ids);
    }
    let fault = app.config.faults.roll(&app.dice, number);
    if let Some(kind) = fault {
        app.stats.fault(kind);
        logged.fault = Some(kind.name());
        tracing::debug!(fault = %kind, path, "injecting a fault");
    }
    match fault {
        Some(FaultKind::Unavailable) => {
            return unavailable(app, &ids, now, logged).into_response(&ids);
        }
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
        Some(FaultKind::Truncate | FaultKind::Stall | FaultKind::TruncatedJson) | None => {}
    }

    let reply = if *method != Method::GET {
        // The API is read-only (§1); the SDKs' POST/PATCH/DELETE are CSDL noise.
        Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "notSupported",
            &format!("The HTTP method '{method}' is not supported on this resource."),
            &ids,
        )
        .header(ALLOW, "GET")
    } else if let Resource::ProfileIndicators(id) | Resource::ProfileIndicatorCount(id) = &resource
        && app.listing.indicators_missing(id)
    {
        Reply::error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "Resource not found.",
            &ids,
        )
    } else {
        let ctx = Ctx {
            base: &app.base_url,
            version,
            raw_path: &path,
            raw_query: uri.query(),
            page_size: app.config.page_size,
            max_top: app.config.max_top,
            shape: app.listing.shape(&resource, &app.dice),
        };
        resources::answer(&app.store, &resource, &ctx)
            .unwrap_or_else(|e| Reply::error(e.status, e.code, &e.message, &ids))
    };
    match fault {
        Some(FaultKind::Truncate) => reply.into_truncated_response(&ids),
        Some(FaultKind::Stall) => reply.into_stalled_response(&ids, app.config.stall),
        Some(FaultKind::TruncatedJson) => reply.into_cut_response(&ids),
        _ => {
            if reply.is_page && reply.status == StatusCode::OK {
                app.stats.served_page();
            }
            reply.into_response(&ids)
        }
    }
}

/// Authentication, licence and throttling, in the order a real gateway applies them.
fn gate(
    app: &App,
    headers: &HeaderMap,
    ids: &RequestIds,
    number: u64,
    now: Instant,
    logged: &mut Entry,
) -> Option<Reply> {
    if app.token_faults.revoke_before(number) {
        let revoked = app.tokens.expire_all();
        tracing::debug!(revoked, "revoking every issued token");
    }
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
    if let Some(wait) = app.storm.wait(number, now) {
        return Some(throttled(app, ids, wait, now, logged));
    }
    if let Some(bucket) = &app.bucket {
        let taken = lock(bucket).try_take(now);
        if let Err(wait) = taken {
            return Some(throttled(app, ids, wait, now, logged));
        }
    }
    if app.dice.chance(app.config.throttle_storm) {
        // Random storm waits are honest but short, so a run under such a storm still finishes.
        let wait = app.dice.millis(50, 300);
        return Some(throttled(app, ids, wait, now, logged));
    }
    None
}

/// 429 with `Retry-After` in the configured spelling.
fn throttled(
    app: &App,
    ids: &RequestIds,
    wait: std::time::Duration,
    now: Instant,
    logged: &mut Entry,
) -> Reply {
    app.stats.throttled();
    promise(app, Reply::too_many_requests(ids), wait, now, logged)
}

/// Adds a `Retry-After` for `wait` and records the promise for the early-request check.
fn promise(
    app: &App,
    mut reply: Reply,
    wait: std::time::Duration,
    now: Instant,
    logged: &mut Entry,
) -> Reply {
    let told = retry_after(wait, app.config.retry_after_format, SystemTime::now());
    if let Some(value) = told.header {
        reply = reply.header(RETRY_AFTER, value);
    }
    if let Some(promised) = told.promised {
        lock(&app.compliance).told(now, now + promised);
        logged.retry_until = Some(app.log.seconds(now + promised));
    }
    reply
}

/// 503, with a `Retry-After` as often as `--fault-retry-after` says (§8.2: "may be specified").
fn unavailable(app: &App, ids: &RequestIds, now: Instant, logged: &mut Entry) -> Reply {
    let reply = Reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
        ids,
    );
    if app.dice.chance(app.config.fault_retry_after) {
        let wait = app.dice.millis(100, 1000);
        return promise(app, reply, wait, now, logged);
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
