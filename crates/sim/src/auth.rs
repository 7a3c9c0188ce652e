//! OAuth2 client credentials (§2.2) and bearer-token checks (§2.3).
//!
//! Tokens are random opaque strings remembered with their expiry and their [`Grant`] (API,
//! audience, roles, who and how): the server, not the client, decides when a token is dead, so a
//! client that ignores `expires_in` gets 401s mid-run, and each API checks that a token was
//! issued for it. The client proves who it is with a secret or, see [`crate::identity`], a
//! certificate or federated assertion.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distr::Alphanumeric;

use serde::Serialize;

use crate::identity::IdentityConfig;
use crate::identity::assertion::{self, AssertionContext};
use crate::identity::resource::{Api, ScopeProblem, parse_scope};
use crate::json::ObjectWriter;
use crate::lock;
use crate::rng::guid;
use crate::timefmt::aad_timestamp;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// How the client proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ClientSecret,
    ClientCertificate,
    FederatedToken,
    ManagedIdentityImds,
    ManagedIdentityAppService,
}

/// What a token stands for; the API that receives it checks it.
#[derive(Clone, Debug, Serialize)]
pub struct Grant {
    pub api: Api,
    /// `aud`: the resource as the client named it (scope without `/.default`).
    pub audience: String,
    /// `roles`: the app roles on `api`.
    pub roles: Vec<String>,
    /// `appid`: the app registration or managed identity the token was issued to.
    pub client_id: String,
    pub credential: CredentialKind,
}

impl Grant {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

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
    /// A live token issued for another API.
    WrongAudience,
}

impl TokenProblem {
    pub fn message(self) -> &'static str {
        match self {
            TokenProblem::Missing => "Access token is empty.",
            TokenProblem::Unknown | TokenProblem::WrongAudience => {
                "Access token validation failure. Invalid audience."
            }
            TokenProblem::Expired => "Lifetime validation failed, the token is expired.",
        }
    }
}

#[derive(Debug)]
struct Issued {
    expiry: Instant,
    grant: Grant,
}

/// One issuance, for `GET /_sim/identity/grants` (the token itself is not kept there).
#[derive(Clone, Debug, Serialize)]
pub struct GrantRecord {
    #[serde(flatten)]
    pub grant: Grant,
    /// Seconds since the epoch.
    pub issued_at: u64,
}

#[derive(Debug)]
pub struct Tokens {
    ttl: Duration,
    issued: Mutex<HashMap<String, Issued>>,
    /// Every token ever issued, for `GET /_sim/tokens` (tests check none leaks into logs).
    history: Mutex<Vec<String>>,
    grants: Mutex<Vec<GrantRecord>>,
}

/// `GET /_sim/tokens` keeps at most this many tokens.
const HISTORY_LIMIT: usize = 10_000;

impl Tokens {
    pub fn new(ttl: Duration) -> Self {
        Tokens {
            ttl,
            issued: Mutex::new(HashMap::new()),
            history: Mutex::new(Vec::new()),
            grants: Mutex::new(Vec::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, now: Instant, grant: Grant) -> String {
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(96)
            .map(char::from)
            .collect();
        let mut issued = lock(&self.issued);
        // Forget dead tokens so a long run with many renewals stays small.
        issued.retain(|_, token| token.expiry > now);
        // An absurd --token-ttl must not overflow the clock: cap it at a century.
        let expiry = now
            .checked_add(self.ttl)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        let record = GrantRecord {
            grant: grant.clone(),
            issued_at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        issued.insert(token.clone(), Issued { expiry, grant });
        drop(issued);
        let mut history = lock(&self.history);
        if history.len() < HISTORY_LIMIT {
            history.push(token.clone());
        }
        drop(history);
        let mut grants = lock(&self.grants);
        if grants.len() < HISTORY_LIMIT {
            grants.push(record);
        }
        token
    }

    /// Every issuance so far, oldest first (no token text).
    pub fn grants(&self) -> Vec<GrantRecord> {
        lock(&self.grants).clone()
    }

    /// Every token issued so far (expired ones included), oldest first.
    pub fn history(&self) -> Vec<String> {
        lock(&self.history).clone()
    }

    /// Checks an `Authorization` header value for a Graph request.
    pub fn check(
        &self,
        authorization: Option<&HeaderValue>,
        now: Instant,
    ) -> Result<(), TokenProblem> {
        self.check_for(authorization, now, Api::Graph).map(|_| ())
    }

    /// Checks an `Authorization` header value for a request to `api`; returns what the token
    /// stands for.
    pub fn check_for(
        &self,
        authorization: Option<&HeaderValue>,
        now: Instant,
        api: Api,
    ) -> Result<Grant, TokenProblem> {
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
            Some(issued) if issued.expiry <= now => Err(TokenProblem::Expired),
            Some(issued) if issued.grant.api != api => Err(TokenProblem::WrongAudience),
            Some(issued) => Ok(issued.grant.clone()),
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
pub(crate) struct AadError {
    status: StatusCode,
    error: &'static str,
    pub(crate) code: u32,
    description: String,
}

impl AadError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: String,
    ) -> Self {
        AadError {
            status,
            error,
            code,
            description,
        }
    }

    pub(crate) fn missing(parameter: &str) -> Self {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    /// 401 `invalid_client`, the answer to most credential problems.
    pub(crate) fn invalid_client(code: u32, description: String) -> Self {
        AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description,
        )
    }

    pub(crate) fn into_response(self) -> Response {
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

/// `POST /{tenant}/oauth2/v2.0/token` with a form body. `base_url` is where the sim is
/// reached: a client assertion's `aud` must be this token endpoint's URL.
pub fn token_endpoint(
    credentials: &Credentials,
    identity: &IdentityConfig,
    tokens: &Tokens,
    base_url: &str,
    tenant: &str,
    body: &[u8],
    now: Instant,
) -> Response {
    let request = TokenRequest {
        credentials,
        identity,
        base_url,
        tenant,
        now: unix_now(),
    };
    match request.grant(body) {
        Ok(grant) => {
            let token = tokens.issue(now, grant);
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

/// Seconds since the epoch, the clock JWT claims use.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

struct TokenRequest<'a> {
    credentials: &'a Credentials,
    identity: &'a IdentityConfig,
    base_url: &'a str,
    tenant: &'a str,
    now: i64,
}

impl TokenRequest<'_> {
    /// Validates a client-credentials request the way Entra does, in Entra's order.
    fn grant(&self, body: &[u8]) -> Result<Grant, AadError> {
        let (credentials, tenant) = (self.credentials, self.tenant);
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
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
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
        let (api, audience) = parse_scope(scope).map_err(|problem| match problem {
            ScopeProblem::UnknownResource(resource) => AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500_011,
                format!(
                    "The resource principal named {resource} was not found in the tenant named {tenant}."
                ),
            ),
            ScopeProblem::NotDefault => AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ),
        })?;
        if client_id != credentials.client_id {
            return Err(AadError::invalid_client(
                700_016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
                ),
            ));
        }
        let credential = match (field("client_assertion"), field("client_secret")) {
            (Some(jwt), _) => assertion::authenticate(
                field("client_assertion_type"),
                jwt,
                &AssertionContext {
                    identity: self.identity,
                    client_id,
                    tenant,
                    base_url: self.base_url,
                    now: self.now,
                },
            )?,
            (None, Some(secret)) => {
                if secret != credentials.client_secret {
                    return Err(AadError::invalid_client(
                        7_000_215,
                        format!(
                            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
                        ),
                    ));
                }
                CredentialKind::ClientSecret
            }
            (None, None) => {
                return Err(AadError::invalid_client(
                    7_000_216,
                    "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.".into(),
                ));
            }
        };
        Ok(Grant {
            api,
            audience,
            roles: self.identity.roles.for_api(api),
            client_id: client_id.to_owned(),
            credential,
        })
    }
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
        let identity = IdentityConfig::default();
        let request = TokenRequest {
            credentials: &creds(),
            identity: &identity,
            base_url: "http://127.0.0.1:1",
            tenant,
            now: unix_now(),
        };
        request.grant(body.as_bytes()).err().map(|e| e.code)
    }

    fn grant_for(api: Api) -> Grant {
        Grant {
            api,
            audience: api.identifiers()[0].into(),
            roles: Vec::new(),
            client_id: "c".into(),
            credential: CredentialKind::ClientSecret,
        }
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
        let token = tokens.issue(t0, grant_for(Api::Graph));
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

    #[test]
    fn each_api_takes_only_its_own_tokens() {
        let tokens = Tokens::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let management = tokens.issue(t0, grant_for(Api::Management));
        let header = HeaderValue::from_str(&format!("Bearer {management}")).expect("header");
        assert_eq!(
            tokens.check(Some(&header), t0),
            Err(TokenProblem::WrongAudience)
        );
        let grant = tokens
            .check_for(Some(&header), t0, Api::Management)
            .expect("management token");
        assert_eq!(grant.api, Api::Management);
        assert_eq!(tokens.grants().len(), 1);
    }
}
