//! HTTP clients. Every client has the same User-Agent, timeouts, TLS by rustls (verification
//! always on) and proxies from the environment (`HTTPS_PROXY`, `NO_PROXY`, as reqwest reads
//! them). A pushing sink's client also trusts the extra CA of `--ca-file` and follows redirects
//! only within its target's origin: a redirect elsewhere must not take credentials or data with
//! it.
//!
//! [`HttpOptions`] (what the user chose) are checked against a URL into an [`Endpoint`] when the
//! run is configured, so that a bad `--ca-file` or a refused `http://` is a usage error before
//! anything is sent; the endpoint makes the [`HttpClient`] when the sink starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::HeaderValue;
use url::{Origin, Url};

use crate::secret::Secret;
use crate::url::PlainHttp;

/// A client builder with what every ctiport client has: its User-Agent, the request timeout
/// and a connect timeout.
pub fn client_builder(request_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("ctiport/", env!("CARGO_PKG_VERSION")))
        .timeout(request_timeout)
        .connect_timeout(Duration::from_secs(15))
}

/// What the user decides about the connection to one endpoint.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Allow `http://` to hosts other than loopback.
    pub allow_http: bool,
    /// An extra PEM certificate (or bundle) to trust, for servers with a private CA.
    pub ca_file: Option<PathBuf>,
    /// How long one request may take before it is abandoned (and retried).
    pub request_timeout: Duration,
    /// Tries per request, the first included, for 429, 5xx, timeouts and connection errors.
    pub max_attempts: u32,
}

/// An endpoint checked at configuration time: its URL under the plain-HTTP rule, and the extra
/// trust anchors read from `--ca-file`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: Url,
    /// PEM bytes of the extra trust anchors.
    ca_pem: Option<Vec<u8>>,
    request_timeout: Duration,
    max_attempts: u32,
}

impl Endpoint {
    pub fn new(url: Url, options: &HttpOptions, plain_http: &PlainHttp) -> Result<Self, String> {
        plain_http.check(&url, options.allow_http)?;
        let ca_pem = match &options.ca_file {
            None => None,
            Some(path) => Some(read_ca_file(path)?),
        };
        Ok(Endpoint {
            url,
            ca_pem,
            request_timeout: options.request_timeout,
            max_attempts: options.max_attempts.max(1),
        })
    }

    /// The client of this endpoint, speaking `dialect`, proving who it is with `authorization`.
    pub fn client(
        &self,
        dialect: Dialect,
        authorization: Option<&Authorization>,
    ) -> Result<HttpClient, String> {
        let origin = self.url.origin();
        let mut builder = client_builder(self.request_timeout).redirect(same_origin(origin));
        if let Some(pem) = &self.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("--ca-file: {e}"))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let authorization = match authorization {
            None => None,
            Some(Authorization::Basic { username, password }) => Some(Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            Some(Authorization::Key(key)) => {
                let mut value = HeaderValue::from_str(key.expose())
                    .map_err(|_| "the API key holds characters a header cannot carry")?;
                // Never printed by the HTTP stack.
                value.set_sensitive(true);
                Some(Credential::Header(value))
            }
        };
        Ok(HttpClient {
            http,
            max_attempts: self.max_attempts,
            dialect,
            authorization,
        })
    }
}

/// How a service speaks HTTP.
#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    /// Names the service in log lines (`TAXII`).
    pub name: &'static str,
    /// What the client accepts, and the type of what it sends.
    pub media_type: &'static str,
    /// A short reason drawn from an error body (`: <message>`, or empty).
    pub detail: fn(&[u8]) -> String,
}

/// What proves a client's identity on every request.
#[derive(Clone, Debug)]
pub enum Authorization {
    /// HTTP Basic (TAXII servers).
    Basic { username: String, password: Secret },
    /// The whole value of the `Authorization` header (a MISP API key).
    Key(Secret),
}

/// An [`Authorization`] ready for the wire.
pub(crate) enum Credential {
    Basic { username: String, password: Secret },
    Header(HeaderValue),
}

/// Redirects followed only within `origin`, at most five.
fn same_origin(origin: Origin) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 5 {
            attempt.error("too many redirects")
        } else if attempt.url().origin() == origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Reads `--ca-file`: PEM bytes holding at least one certificate.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
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

/// The client of one endpoint, with its retry budget; [`HttpClient::send`] is its request loop.
pub struct HttpClient {
    pub(crate) http: reqwest::Client,
    pub(crate) max_attempts: u32,
    pub(crate) dialect: Dialect,
    pub(crate) authorization: Option<Credential>,
}

impl HttpClient {
    /// Whether the requests carry credentials.
    pub fn is_authorized(&self) -> bool {
        self.authorization.is_some()
    }
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

/// A transport error with its causes, without the URL (logged separately, and kept out of
/// messages short).
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
    fn plain_text_details_are_one_short_line() {
        assert_eq!(
            plain_text_detail(b"Unauthorized Access\nmore"),
            ": Unauthorized Access"
        );
        assert_eq!(plain_text_detail(b"<html>"), "");
        assert_eq!(plain_text_detail(b"{\"a\":1}"), "");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let options = |ca_file: &str| HttpOptions {
            allow_http: false,
            ca_file: Some(PathBuf::from(ca_file)),
            request_timeout: Duration::from_secs(1),
            max_attempts: 1,
        };
        let rule = PlainHttp {
            exposes: "data",
            allow_option: "--allow-http",
        };
        let url = Url::parse("https://h.example/").unwrap();
        let dialect = Dialect {
            name: "test",
            media_type: "application/json",
            detail: plain_text_detail,
        };
        let endpoint = Endpoint::new(url.clone(), &options("/dev/null"), &rule);
        assert!(endpoint.unwrap_err().contains("holds no PEM certificate"));
        let mut plain = options("/dev/null");
        plain.ca_file = None;
        let endpoint = Endpoint::new(url.clone(), &plain, &rule).unwrap();
        let key = Authorization::Key(Secret::new("bad\nkey"));
        assert!(endpoint.client(dialect, Some(&key)).is_err());
        let client = endpoint.client(dialect, None).unwrap();
        assert!(!client.is_authorized());
        let missing = Endpoint::new(url.clone(), &options("/nonexistent/ca.pem"), &rule);
        assert!(missing.unwrap_err().contains("cannot read --ca-file"));
        let not_pem = Endpoint::new(url, &options("Cargo.toml"), &rule);
        assert!(not_pem.unwrap_err().contains("--ca-file"));
    }
}
