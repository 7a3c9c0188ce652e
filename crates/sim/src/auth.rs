//! OAuth2 client credentials (§2.2) and bearer-token checks (§2.3).
//!
//! Tokens are random opaque strings remembered with their expiry: the server, not the client,
//! decides when a token is dead, so a client that ignores `expires_in` gets 401s mid-run.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::json::ObjectWriter;
use crate::lock;
use crate::rng::guid;
use crate::timefmt::aad_timestamp;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The app registration the token endpoint accepts.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Why a bearer token was refused; the message is Graph's usual wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Missing,
    Unknown,
    Expired,
}

impl TokenProblem {
    pub fn message(self) -> &'static str {
        match self {
            TokenProblem::Missing => "Access token is empty.",
            TokenProblem::Unknown => "Access token validation failure. Invalid audience.",
            TokenProblem::Expired => "Lifetime validation failed, the token is expired.",
        }
    }
}

#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    issued: Mutex<HashMap<String, Instant>>,
    /// Every token ever issued, for `GET /_sim/tokens` (tests check none leaks into logs).
    history: Mutex<Vec<String>>,
}

/// `GET /_sim/tokens` keeps at most this many tokens.
const HISTORY_LIMIT: usize = 10_000;

impl Tokens {
    pub fn new(ttl: Duration) -> Self {
        Tokens {
            ttl,
            issued: Mutex::new(HashMap::new()),
            history: Mutex::new(Vec::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, now: Instant) -> String {
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(96)
            .map(char::from)
            .collect();
        let mut issued = lock(&self.issued);
        // Forget dead tokens so a long run with many renewals stays small.
        issued.retain(|_, expiry| *expiry > now);
        // An absurd --token-ttl must not overflow the clock: cap it at a century.
        let expiry = now
            .checked_add(self.ttl)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        issued.insert(token.clone(), expiry);
        drop(issued);
        let mut history = lock(&self.history);
        if history.len() < HISTORY_LIMIT {
            history.push(token.clone());
        }
        token
    }

    /// Every token issued so far (expired ones included), oldest first.
    pub fn history(&self) -> Vec<String> {
        lock(&self.history).clone()
    }

    /// Checks an `Authorization` header value.
    pub fn check(
        &self,
        authorization: Option<&HeaderValue>,
        now: Instant,
    ) -> Result<(), TokenProblem> {
        let token = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(TokenProblem::Missing)?;
        match lock(&self.issued).get(token) {
            None => Err(TokenProblem::Unknown),
            Some(expiry) if *expiry <= now => Err(TokenProblem::Expired),
            Some(_) => Ok(()),
        }
    }

    /// `POST /_sim/expire-tokens`: every issued token stops working. Returns how many there were.
    pub fn expire_all(&self) -> usize {
        let mut issued = lock(&self.issued);
        let n = issued.len();
        issued.clear();
        n
    }
}

/// `WWW-Authenticate` of Graph's 401s.
pub const WWW_AUTHENTICATE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;

/// An Entra (AADSTS) error: `{"error","error_description","error_codes",…}`.
#[derive(Debug)]
struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> Self {
        AadError {
            status,
            error,
            code,
            description,
        }
    }

    fn missing(parameter: &str) -> Self {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn into_response(self) -> Response {
        let trace_id = guid(&mut rand::rng());
        let correlation_id = guid(&mut rand::rng());
        let timestamp = aad_timestamp(SystemTime::now());
        let description = format!(
            "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            self.code, self.description
        );
        let body = ObjectWriter::new()
            .str("error", self.error)
            .str("error_description", &description)
            .raw("error_codes", &format!("[{}]", self.code))
            .str("timestamp", &timestamp)
            .str("trace_id", &trace_id)
            .str("correlation_id", &correlation_id)
            .str(
                "error_uri",
                &format!("https://login.microsoftonline.com/error?code={}", self.code),
            )
            .finish();
        json_response(self.status, body, &trace_id)
    }
}

/// A token endpoint answer: JSON, never cached, with Entra's `x-ms-request-id`.
pub fn json_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-ms-request-id"), value);
    }
    (status, headers, body).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token` with a form body.
pub fn token_endpoint(
    credentials: &Credentials,
    tokens: &Tokens,
    tenant: &str,
    body: &[u8],
    now: Instant,
) -> Response {
    match grant(credentials, tenant, body) {
        Ok(()) => {
            let token = tokens.issue(now);
            let secs = i64::try_from(tokens.ttl().as_secs()).unwrap_or(i64::MAX);
            let body = ObjectWriter::new()
                .str("token_type", "Bearer")
                .num("expires_in", secs)
                .num("ext_expires_in", secs)
                .str("access_token", &token)
                .finish();
            json_response(StatusCode::OK, body, &guid(&mut rand::rng()))
        }
        Err(error) => error.into_response(),
    }
}

/// Validates a client-credentials request the way Entra does, in Entra's order.
fn grant(credentials: &Credentials, tenant: &str, body: &[u8]) -> Result<(), AadError> {
    if !tenant.eq_ignore_ascii_case(&credentials.tenant) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());

    let grant_type = field("grant_type").ok_or_else(|| AadError::missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = field("client_id").ok_or_else(|| AadError::missing("client_id"))?;
    let scope = field("scope").ok_or_else(|| AadError::missing("scope"))?;
    if scope != GRAPH_SCOPE {
        return Err(if scope.ends_with("/.default") {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500_011,
                format!(
                    "The resource principal named {} was not found in the tenant named {tenant}.",
                    scope.trim_end_matches("/.default")
                ),
            )
        } else {
            AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            )
        });
    }
    if client_id != credentials.client_id {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
            ),
        ));
    }
    let Some(secret) = field("client_secret") else {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.".into(),
        ));
    };
    if secret != credentials.client_secret {
        return Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // a failing test should panic
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            tenant: "t".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
        }
    }

    fn code_of(tenant: &str, body: &str) -> Option<u32> {
        grant(&creds(), tenant, body.as_bytes())
            .err()
            .map(|e| e.code)
    }

    const GOOD: &str = "client_id=c&client_secret=s&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials";

    #[test]
    fn validates_like_entra() {
        assert_eq!(code_of("t", GOOD), None);
        assert_eq!(code_of("T", GOOD), None);
        assert_eq!(code_of("x", GOOD), Some(90_002));
        assert_eq!(
            code_of("t", &GOOD.replace("client_secret=s", "client_secret=bad")),
            Some(7_000_215)
        );
        assert_eq!(
            code_of("t", &GOOD.replace("client_secret=s&", "")),
            Some(7_000_216)
        );
        assert_eq!(
            code_of("t", &GOOD.replace("client_id=c", "client_id=z")),
            Some(700_016)
        );
        assert_eq!(
            code_of("t", &GOOD.replace("client_credentials", "password")),
            Some(70_003)
        );
        assert_eq!(
            code_of("t", &GOOD.replace("%2F.default", "%2FUser.Read")),
            Some(1_002_012)
        );
        assert_eq!(
            code_of("t", &GOOD.replace("graph.microsoft.com", "other.example")),
            Some(500_011)
        );
        assert_eq!(code_of("t", ""), Some(900_144));
    }

    #[test]
    fn tokens_expire_server_side() {
        let tokens = Tokens::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let token = tokens.issue(t0);
        let header = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
        assert_eq!(tokens.check(Some(&header), t0), Ok(()));
        assert_eq!(
            tokens.check(Some(&header), t0 + Duration::from_secs(10)),
            Err(TokenProblem::Expired)
        );
        assert_eq!(tokens.check(None, t0), Err(TokenProblem::Missing));
        let wrong = HeaderValue::from_static("Bearer nope");
        assert_eq!(tokens.check(Some(&wrong), t0), Err(TokenProblem::Unknown));
        assert_eq!(tokens.expire_all(), 1);
        assert_eq!(tokens.history(), std::slice::from_ref(&token));
        assert_eq!(tokens.check(Some(&header), t0), Err(TokenProblem::Unknown));
    }
}
