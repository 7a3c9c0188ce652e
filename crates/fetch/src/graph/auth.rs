//! OAuth2 client credentials against `{authority}/{tenant}/oauth2/v2.0/token`, with the token
//! cached, renewed before it expires, and renewed once more when Graph answers 401.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::{GRAPH_SCOPE, GraphConfig};
use super::error::GraphError;
use ctiport_net::{Secret, backoff, describe, is_retryable};

/// A cached access token; `generation` tells a stale token from one renewed by another worker.
#[derive(Clone)]
pub struct Token {
    pub value: Secret,
    pub generation: u64,
    expires_at: Instant,
    lifetime: Duration,
}

impl Token {
    /// Renew once less than a tenth of the lifetime (at least a minute) is left, so that a
    /// request never leaves with a token that expires on the way.
    fn fresh(&self, now: Instant) -> bool {
        let margin = (self.lifetime / 10)
            .max(Duration::from_secs(60))
            .min(self.lifetime / 2);
        now + margin < self.expires_at
    }
}

pub struct TokenProvider {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    tenant_id: String,
    secret: Secret,
    cached: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenProvider {
    pub fn new(http: reqwest::Client, config: &GraphConfig) -> Self {
        TokenProvider {
            http,
            token_url: config.token_url(),
            client_id: config.credentials.client_id.clone(),
            tenant_id: config.credentials.tenant_id.clone(),
            secret: config.credentials.client_secret.clone(),
            cached: Mutex::new(None),
        }
    }

    /// A valid token, fetching a new one when none is cached or it is about to expire.
    pub async fn token(&self) -> Result<Token, GraphError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.fresh(Instant::now())) {
            return Ok(token.clone());
        }
        let generation = cached.as_ref().map_or(1, |t| t.generation + 1);
        let token = self.request(generation).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Drops the cached token if it is still `stale` (Graph said 401), so the next call renews it.
    pub async fn invalidate(&self, stale: &Token) {
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.generation == stale.generation)
            && let Some(token) = cached.as_mut()
        {
            token.expires_at = Instant::now();
        }
    }

    /// Asks the token endpoint, retrying what can succeed on retry (unreachable, 429, 5xx); a
    /// refusal of the credentials is final.
    async fn request(&self, generation: u64) -> Result<Token, GraphError> {
        let mut attempt = 0;
        loop {
            match self.request_once(generation).await {
                Err(TokenFailure::Transient(why)) if attempt + 1 < TOKEN_ATTEMPTS => {
                    let wait = backoff(attempt);
                    tracing::warn!(
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "token request failed ({why}); retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(TokenFailure::Transient(why)) => {
                    return Err(GraphError::Auth(format!(
                        "the token endpoint {} failed: {why}",
                        self.token_url
                    )));
                }
                Err(TokenFailure::Final(error)) => return Err(error),
                Ok(token) => return Ok(token),
            }
        }
    }

    async fn request_once(&self, generation: u64) -> Result<Token, TokenFailure> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.secret.expose()),
            ("scope", GRAPH_SCOPE),
            ("grant_type", "client_credentials"),
        ];
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenFailure::Transient(format!("unreachable: {}", describe(&e))))?;
        let status = response.status();
        if is_retryable(status) {
            return Err(TokenFailure::Transient(format!("HTTP {status}")));
        }
        let body = response.text().await.map_err(|e| {
            TokenFailure::Transient(format!("reading the response: {}", describe(&e)))
        })?;
        if !status.is_success() {
            let detail = serde_json::from_str::<TokenErrorBody>(&body)
                .map(|b| {
                    format!(
                        "{}: {}",
                        b.error,
                        b.error_description.lines().next().unwrap_or_default()
                    )
                })
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(TokenFailure::Final(GraphError::Auth(format!(
                "the token endpoint refused client {} of tenant {} ({status}) — {detail}. Check AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
                self.client_id, self.tenant_id
            ))));
        }
        let parsed: TokenResponse = serde_json::from_str(&body).map_err(|_| {
            TokenFailure::Final(GraphError::Auth(
                "the token endpoint answered without an access_token".into(),
            ))
        })?;
        // `expires_in` is a number in the docs, a string in some proxies.
        let seconds = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(3599.0),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3599.0),
            _ => 3599.0,
        };
        let lifetime = Duration::from_secs_f64(seconds.clamp(1.0, 86_400.0));
        tracing::debug!(
            generation,
            lifetime_seconds = lifetime.as_secs(),
            "obtained an access token"
        );
        Ok(Token {
            value: Secret::new(parsed.access_token),
            generation,
            expires_at: Instant::now() + lifetime,
            lifetime,
        })
    }
}

/// Tries of the token request, the first included.
const TOKEN_ATTEMPTS: u32 = 4;

enum TokenFailure {
    Transient(String),
    Final(GraphError),
}
