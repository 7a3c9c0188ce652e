//! The request loop of the pushing sinks: one request, tried again while the answer is worth
//! another try, waiting as the server's `Retry-After` says or with full-jitter backoff.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder, StatusCode};
use url::Url;

use crate::classify::Cause;
use crate::client::{Credential, HttpClient, describe};
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
    /// Sends a request with the client's media type and credentials (and `body`, if any), up to
    /// the client's attempts, while the answer is transient trouble ([`Cause::is_transient`]:
    /// 429, 5xx, a timeout, a broken connection or body). Any other answer is returned. `what`
    /// names the request in log lines and errors (`adding objects`).
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<Answer, Failure> {
        let mut last = String::new();
        for attempt in 0..self.max_attempts {
            let wait = match self.request(&method, url, body).send().await {
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
                            let detail = (self.dialect.detail)(&bytes);
                            last = format!("HTTP {}{detail}", status.as_u16());
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
                    self.dialect.name
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

impl HttpClient {
    fn request(&self, method: &Method, url: &Url, body: Option<&[u8]>) -> RequestBuilder {
        let media_type = self.dialect.media_type;
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, media_type);
        request = match &self.authorization {
            None => request,
            Some(Credential::Basic { username, password }) => {
                request.basic_auth(username, Some(password.expose()))
            }
            Some(Credential::Header(value)) => request.header(AUTHORIZATION, value.clone()),
        };
        match body {
            Some(body) => request.header(CONTENT_TYPE, media_type).body(body.to_vec()),
            None => request,
        }
    }
}
