//! GET a Graph URL as JSON, the way a well-behaved client does: under the shared throttle, with a
//! fresh token, retrying only what can succeed on retry.

use std::time::Duration;

use ctiport_net::{Cause, Secret, backoff, client_builder, describe, origin_of, retry_after};
use reqwest::StatusCode;
use serde_json::Value;

use super::auth::TokenProvider;
use super::config::GraphConfig;
use super::error::GraphError;
use super::throttle::Throttle;

pub struct GraphClient {
    http: reqwest::Client,
    auth: TokenProvider,
    throttle: Throttle,
    max_attempts: u32,
    /// Scheme, host and port of the Graph URL: the token is only ever sent there.
    origin: String,
}

/// One attempt's result, before the retry policy decides.
enum Attempt {
    Done(Value),
    /// Retry after this long (from `Retry-After`, so every worker pauses).
    RetryAfter(Duration, String),
    /// Retry after a jittered backoff.
    Retry(String),
    /// 401 with a token that may have expired: renew once and retry.
    Unauthorized,
    Fail(GraphError),
}

impl GraphClient {
    pub fn new(config: &GraphConfig) -> Result<Self, GraphError> {
        let http = client_builder(config.request_timeout)
            .build()
            .map_err(|e| GraphError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let origin = origin_of(&config.graph_url).ok_or_else(|| {
            GraphError::Invalid(format!("--graph-url '{}' is not a URL", config.graph_url))
        })?;
        Ok(GraphClient {
            auth: TokenProvider::new(http.clone(), config),
            http,
            throttle: Throttle::new(config.rate, config.breaker_threshold),
            max_attempts: config.max_attempts.max(1),
            origin,
        })
    }

    /// GETs `url` and parses the body as JSON.
    pub async fn get_json(&self, url: &str) -> Result<Value, GraphError> {
        if origin_of(url).as_deref() != Some(self.origin.as_str()) {
            // A nextLink to another host would receive our bearer token.
            return Err(GraphError::Invalid(format!(
                "refusing to follow {url}: not on {}",
                self.origin
            )));
        }
        let mut renewed = false;
        let mut last = String::new();
        for attempt in 0..self.max_attempts {
            self.throttle.admit().await?;
            let token = self.auth.token().await?;
            match self.attempt(url, &token.value).await {
                Attempt::Done(value) => {
                    self.throttle.succeeded();
                    return Ok(value);
                }
                Attempt::Unauthorized if !renewed => {
                    renewed = true;
                    tracing::debug!(url, "401 from Graph: renewing the token once");
                    self.auth.invalidate(&token).await;
                }
                Attempt::Unauthorized => {
                    return Err(GraphError::Auth(
                        "Microsoft Graph rejected a freshly issued token (401)".into(),
                    ));
                }
                Attempt::RetryAfter(wait, why) => {
                    tracing::debug!(
                        url,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "{why}: pausing every worker"
                    );
                    // Pacing, not failure: a server that says when to come back is working, so
                    // this does not count towards the circuit breaker.
                    self.throttle.pause_for(wait);
                    last = why;
                }
                Attempt::Retry(why) => {
                    let wait = backoff(attempt);
                    tracing::debug!(
                        url,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "{why}: backing off"
                    );
                    self.throttle.failed(&why);
                    last = why;
                    tokio::time::sleep(wait).await;
                }
                Attempt::Fail(error) => return Err(error),
            }
        }
        Err(GraphError::Exhausted {
            url: url.to_owned(),
            attempts: self.max_attempts,
            last,
        })
    }

    async fn attempt(&self, url: &str, token: &Secret) -> Attempt {
        let response = match self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header("Accept", "application/json")
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                return Attempt::Retry(format!("request failed: {}", describe(&error)));
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => {
                return Attempt::Retry(format!(
                    "reading the response failed: {}",
                    describe(&error)
                ));
            }
        };
        let code = || error_code(&body);
        match (status, Cause::of_status(status)) {
            (StatusCode::OK, _) => match serde_json::from_slice(&body) {
                Ok(value) => Attempt::Done(value),
                // A truncated body reads as broken JSON: the page is fetched again.
                Err(error) => Attempt::Retry(format!("unreadable JSON in a 200 response: {error}")),
            },
            (_, Some(Cause::Unauthorized)) => Attempt::Unauthorized,
            (_, Some(Cause::Forbidden)) => Attempt::Fail(GraphError::Forbidden { code: code() }),
            (_, Some(Cause::NotFound)) => Attempt::Fail(GraphError::NotFound {
                url: url.to_owned(),
            }),
            // A server that says when to come back (429, or 503 as Graph sends it) is heard.
            (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, _)
                if retry_after.is_some() =>
            {
                Attempt::RetryAfter(
                    retry_after.unwrap_or_default(),
                    format!("HTTP {}", status.as_u16()),
                )
            }
            (_, Some(cause)) if cause.is_transient() => {
                Attempt::Retry(format!("HTTP {} {}", status.as_u16(), code()))
            }
            (other, _) => Attempt::Fail(GraphError::Rejected {
                status: other.as_u16(),
                code: code(),
                url: url.to_owned(),
            }),
        }
    }
}

/// `error.code` of a Graph error envelope (keys matched case-insensitively), else empty.
fn error_code(body: &[u8]) -> String {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("error"))
        .and_then(|(_, e)| e.as_object())
        .and_then(|e| e.iter().find(|(k, _)| k.eq_ignore_ascii_case("code")))
        .and_then(|(_, c)| c.as_str())
        .unwrap_or_default()
        .to_owned()
}
