//! The request loop of the pushing sinks: one request, tried again while the answer is worth
//! another try, waiting as the server's `Retry-After` says or with full-jitter backoff.

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use url::Url;

use crate::classify::Cause;
use crate::client::{HttpClient, describe};
use crate::retry::{backoff, retry_after};

/// An answer that is not retried: a success, or a refusal the caller explains.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a request got no answer worth reading.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server's TLS certificate is not trusted: retrying cannot help.
    #[error(
        "TLS certificate of {url} not trusted: {detail}; for a server with a private CA, pass \
         its certificate with --ca-file"
    )]
    Untrusted { url: String, detail: String },
    /// Every attempt failed with a retryable status or a transport error.
    #[error("{what} ({url}): gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        what: String,
        url: String,
        attempts: u32,
        last: String,
    },
}

impl HttpClient {
    /// Sends the request `build` makes, up to the client's attempts, while the answer is
    /// transient trouble ([`Cause::is_transient`]: 429, 5xx, a timeout, a broken connection or
    /// body). Any other answer is returned. `what` names the request in log lines and errors
    /// (`adding objects`).
    pub async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        url: &Url,
        what: &str,
    ) -> Result<Answer, Failure> {
        let mut last = String::new();
        for attempt in 0..self.max_attempts {
            let wait = match build().send().await {
                Err(error) if Cause::of_error(&error) == Cause::Untrusted => {
                    return Err(Failure::Untrusted {
                        url: url.to_string(),
                        detail: describe(&error),
                    });
                }
                Err(error) => {
                    last = describe(&error);
                    backoff(attempt)
                }
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Err(error) => {
                            last = format!("reading the response: {}", describe(&error));
                            backoff(attempt)
                        }
                        Ok(bytes) if Cause::of_status(status).is_some_and(Cause::is_transient) => {
                            last = format!("HTTP {}{}", status.as_u16(), (self.detail)(&bytes));
                            retry_after(&headers).unwrap_or_else(|| backoff(attempt))
                        }
                        Ok(bytes) => {
                            return Ok(Answer {
                                status,
                                headers,
                                body: bytes.to_vec(),
                            });
                        }
                    }
                }
            };
            if attempt + 1 < self.max_attempts {
                tracing::warn!(
                    url = %url,
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    "{} {what}: {last}; retrying",
                    self.name
                );
                tokio::time::sleep(wait).await;
            }
        }
        Err(Failure::Exhausted {
            what: what.to_owned(),
            url: url.to_string(),
            attempts: self.max_attempts,
            last,
        })
    }
}
