//! The user-facing options of `--to misp:<base url>`, validated before anything is sent: the base
//! URL, the plain-HTTP rule, the API key (from `MISP_KEY` only) and the trust anchors.

use ctiport_model::net::redact_userinfo;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::error::MispError;
use crate::http::{Secret, is_loopback};

/// The environment variable that holds the API key.
pub const KEY_VAR: &str = "MISP_KEY";

/// How long one HTTP request may take before it is abandoned (and retried). MISP answers an add
/// or edit of a large event only once it has saved every attribute.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Tries per request, the first included, for 429, 5xx and connection errors.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;

/// Options that apply to every `misp:` sink of a run, from the command line.
#[derive(Clone, Debug)]
pub struct MispRestOptions {
    /// Allow `http://` to hosts other than loopback (the key then travels in clear text).
    pub allow_http: bool,
    /// An extra PEM certificate (or bundle) to trust, for instances with a private CA.
    pub ca_file: Option<PathBuf>,
    pub request_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for MispRestOptions {
    fn default() -> Self {
        MispRestOptions {
            allow_http: false,
            ca_file: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// A validated MISP target.
#[derive(Clone, Debug)]
pub struct MispRestConfig {
    /// The instance's base URL, always with a trailing slash (MISP may live under a path).
    pub base_url: Url,
    pub key: Secret,
    /// PEM bytes of the extra trust anchors, read at configuration time.
    pub ca_pem: Option<Vec<u8>>,
    pub request_timeout: Duration,
    pub max_attempts: u32,
}

impl MispRestConfig {
    /// Validates `base` (the text after `misp:`) and the key against the options.
    pub fn new(
        base: &str,
        options: &MispRestOptions,
        key: Option<String>,
    ) -> Result<Self, MispError> {
        let base_url = parse_base_url(base)?;
        if base_url.scheme() == "http" && !options.allow_http && !is_loopback(&base_url) {
            return Err(MispError::Config(format!(
                "refusing plain http:// to {}: the API key and the intelligence would travel \
                 unencrypted; use https://, or pass --misp-allow-http if you really mean it",
                base_url.host_str().unwrap_or_default()
            )));
        }
        let key = parse_key(key)?;
        let ca_pem = match &options.ca_file {
            None => None,
            Some(path) => Some(crate::http::read_ca_file(path).map_err(MispError::Config)?),
        };
        Ok(MispRestConfig {
            base_url,
            key,
            ca_pem,
            request_timeout: options.request_timeout,
            max_attempts: options.max_attempts.max(1),
        })
    }
}

/// The key from `MISP_KEY`: MISP accepts only 40 letters and digits (reference `misp.md` §3.1),
/// so anything else is a configuration error that no request could fix. Surrounding white space
/// (a newline from a key file) is ignored. The key itself never appears in a message.
pub fn parse_key(key: Option<String>) -> Result<Secret, MispError> {
    let Some(key) = key.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()) else {
        return Err(MispError::Config(format!(
            "--to misp: needs the MISP API key in the environment variable {KEY_VAR} (keys are \
             never taken from arguments)"
        )));
    };
    if key.len() != 40 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(MispError::Config(format!(
            "{KEY_VAR} does not hold a MISP API key: MISP keys are 40 letters and digits (this \
             value has {} characters{})",
            key.chars().count(),
            if key.chars().all(|c| c.is_ascii_alphanumeric()) {
                ""
            } else {
                ", some of them not letters or digits"
            }
        )));
    }
    Ok(Secret::new(key))
}

/// `https://host[:port][/path]` → the base URL with a trailing slash. Credentials, queries and
/// fragments are refused (credentials would end up in logs; the key goes in `MISP_KEY`).
pub fn parse_base_url(text: &str) -> Result<Url, MispError> {
    let bad = |why: &str| {
        MispError::Config(format!(
            "'{}' is not a MISP base URL ({why}); expected https://misp.example.org/",
            redact_userinfo(text)
        ))
    };
    let mut url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() || redact_userinfo(text) != text {
        return Err(MispError::Config(format!(
            "credentials in the MISP URL are not accepted (they would end up in logs); set \
             {KEY_VAR} instead"
        )));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https or http"));
    }
    if url.host().is_none() {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment allowed"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdefghijABCDEFGHIJ0123456789";

    #[test]
    fn base_urls_get_a_trailing_slash_and_keep_their_path() {
        let url = |t: &str| parse_base_url(t).map(|u| u.to_string());
        assert_eq!(
            url("https://misp.example.org").ok().as_deref(),
            Some("https://misp.example.org/")
        );
        assert_eq!(
            url("https://example.org/misp").ok().as_deref(),
            Some("https://example.org/misp/")
        );
        for bad in [
            "ftp://misp.example.org/",
            "https://misp.example.org/?a=b",
            "misp.example.org",
            "https://u:hunter2@misp.example.org/",
        ] {
            let error = url(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!error.is_empty(), "{bad}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        let options = MispRestOptions::default();
        let key = || Some(KEY.to_owned());
        for ok in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "https://misp.example.org/",
        ] {
            assert!(MispRestConfig::new(ok, &options, key()).is_ok(), "{ok}");
        }
        let refused = MispRestConfig::new("http://misp.example.org/", &options, key());
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("--misp-allow-http"))
        );
        let allowed = MispRestOptions {
            allow_http: true,
            ..MispRestOptions::default()
        };
        assert!(MispRestConfig::new("http://misp.example.org/", &allowed, key()).is_ok());
    }

    #[test]
    fn the_key_is_checked_and_never_shown() {
        assert!(parse_key(Some(format!("  {KEY}\n"))).is_ok());
        for bad in [None, Some(String::new()), Some("   ".into())] {
            let error = parse_key(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(KEY_VAR), "{error}");
        }
        let secret = "hunter2-is-not-a-key";
        let error = parse_key(Some(secret.into()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("40 letters and digits"), "{error}");
        assert!(!error.contains(secret), "{error}");
        let debug = format!("{:?}", parse_key(Some(KEY.into())));
        assert!(!debug.contains(KEY), "{debug}");
    }
}
