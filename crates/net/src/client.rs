//! The HTTP client of the pushing sinks and the one request loop they share: TLS always verified
//! (extra trust anchors from `--ca-file`), redirects followed only within the target's origin (a
//! redirect elsewhere must not take credentials or data with it), plain `http://` only to
//! loopback unless explicitly allowed, and retries with backoff on 429, 5xx and connection errors.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::{Host, Origin, Url};

use super::retry::{backoff, is_retryable, parse_retry_after};

pub use ctiport_model::net::Secret;

/// Plain HTTP is harmless only when the traffic never leaves the machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Reads `--ca-file`: PEM bytes holding at least one certificate.
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("--ca-file {} is not a PEM certificate: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "--ca-file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(pem)
}

/// A client for one target: `ctiport/<version>` User-Agent, the request timeout, the extra trust
/// anchors, and redirects followed only within `origin`.
pub fn build_client(
    origin: Origin,
    ca_pem: Option<&[u8]>,
    request_timeout: Duration,
) -> Result<reqwest::Client, String> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if attempt.url().origin() == origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("ctiport/", env!("CARGO_PKG_VERSION")))
        .timeout(request_timeout)
        .connect_timeout(Duration::from_secs(15))
        .redirect(redirects);
    if let Some(pem) = ca_pem {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("--ca-file: {e}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A response that is not retried.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why [`send`] gave up.
#[derive(Debug)]
pub enum SendError {
    /// The server's TLS certificate is not trusted: retrying cannot help.
    Untrusted(String),
    /// Every attempt failed with a retryable status or a connection error.
    Exhausted { attempts: u32, last: String },
}

/// Sends the request `build` makes, up to `max_attempts` times, while the answer is 429, 5xx or a
/// connection/body error, waiting as the server's `Retry-After` says or with full-jitter backoff.
/// Any other answer is returned. `label` names the request in the retry log lines; `detail`
/// extracts a short reason from an error body.
pub async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
    max_attempts: u32,
    url: &Url,
    label: &str,
    detail: fn(&[u8]) -> String,
) -> Result<Answer, SendError> {
    let max_attempts = max_attempts.max(1);
    let mut last = String::new();
    for attempt in 0..max_attempts {
        let wait = match build().send().await {
            Err(error) if is_certificate_error(&error) => {
                return Err(SendError::Untrusted(describe(&error)));
            }
            Err(error) => {
                last = describe(&error);
                backoff(attempt)
            }
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let retry_after = headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                match response.bytes().await {
                    Err(error) => {
                        last = format!("reading the response: {}", describe(&error));
                        backoff(attempt)
                    }
                    Ok(bytes) if is_retryable(status) => {
                        last = format!("HTTP {}{}", status.as_u16(), detail(&bytes));
                        retry_after.unwrap_or_else(|| backoff(attempt))
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
        if attempt + 1 < max_attempts {
            tracing::warn!(
                url = %url,
                attempt = attempt + 1,
                wait_ms = wait.as_millis() as u64,
                "{label}: {last}; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
    Err(SendError::Exhausted {
        attempts: max_attempts,
        last,
    })
}

/// A short, one-line plain-text body (`Unauthorized Access`), never HTML or JSON.
pub fn plain_text_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') || text.starts_with('{') {
        return String::new();
    }
    let line: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    format!(": {line}")
}

/// A certificate the client does not trust will not become trusted on retry.
pub fn is_certificate_error(error: &reqwest::Error) -> bool {
    error.is_connect() && describe(error).to_ascii_lowercase().contains("certificate")
}

/// A transport error with its causes, without the URL (logged separately).
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for (text, expected) in [
            ("http://127.0.0.1:5000/", true),
            ("http://127.8.9.1/", true),
            ("http://[::1]:5000/", true),
            ("http://LOCALHOST/", true),
            ("http://misp.example/", false),
            ("http://10.0.0.1/", false),
        ] {
            let url = Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(is_loopback(&url), expected, "{text}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("Hunter2-secret");
        assert!(!format!("{secret:?}").contains("Hunter2"));
        assert_eq!(secret.expose(), "Hunter2-secret");
    }

    #[test]
    fn plain_text_details_are_one_short_line() {
        assert_eq!(
            plain_text_detail(b"Unauthorized Access\nmore"),
            ": Unauthorized Access"
        );
        assert_eq!(plain_text_detail(b"<html>"), "");
        assert_eq!(plain_text_detail(b"{\"a\":1}"), "");
    }
}
