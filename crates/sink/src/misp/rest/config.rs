//! The options of `--to misp:<base url>` and its target, validated before anything is sent: the
//! base URL, the plain-HTTP rule, the trust anchors and the API key.

use std::time::Duration;

use ctiport_net::{Endpoint, HttpOptions, PlainHttp, Secret, UrlKind};
use serde::Deserialize;

use super::sink::MispRestSink;
use crate::misp::config::MispEventArgs;
use crate::push::{CaFile, Connection, PushError};
use crate::registry::{Built, SinkConfig, SinkContext};

/// `--to misp:<base url>`: the events' options, as for a feed, and the connection's.
#[derive(Clone, Debug, clap::Args)]
pub struct MispRestConfig {
    #[command(flatten)]
    pub events: MispEventArgs,

    /// Allow a `misp:` sink over plain http:// to a host other than loopback (the API key and
    /// intelligence then travel unencrypted).
    #[arg(long)]
    pub misp_allow_http: bool,

    #[command(flatten)]
    pub ca: CaFile,
}

/// The API key a config file may give for a `misp:` sink, in place of `MISP_KEY`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MispKeys {
    pub misp_key: Option<Secret>,
}

impl SinkConfig for MispRestConfig {
    const NAME: &'static str = "misp:";
    type FileKeys = MispKeys;
    const SECRET_KEYS: &'static [&'static str] = &["misp_key"];

    fn check_target(target: &str) -> Result<(), String> {
        MISP.parse(target).map(drop)
    }

    fn build(self, target: &str, keys: MispKeys, context: &SinkContext) -> Built {
        let options = self.events.options(context)?;
        let key = context.credential(keys.misp_key, KEY_VAR);
        let http = MISP.options(&self.ca, self.misp_allow_http);
        let target = MispTarget::new(target, &http, key).map_err(|e| e.in_sink("MISP"))?;
        Ok(Box::new(MispRestSink::new(target, options)?))
    }
}

/// The environment variable that holds the API key.
pub const KEY_VAR: &str = "MISP_KEY";

/// How a `misp:` sink connects. A request may take five minutes: MISP answers an add or edit of
/// a large event only once it has saved every attribute.
pub const MISP: Connection = Connection {
    url: UrlKind {
        name: "a MISP base URL",
        example: "https://misp.example.org/",
        credentials: "set MISP_KEY instead",
    },
    plain_http: PlainHttp {
        exposes: "the API key and the intelligence",
        allow_option: "--misp-allow-http",
    },
    request_timeout: Duration::from_secs(300),
    max_attempts: 6,
};

/// A validated MISP target.
#[derive(Clone, Debug)]
pub struct MispTarget {
    /// The instance's base URL (always with a trailing slash: MISP may live under a path).
    pub endpoint: Endpoint,
    pub key: Secret,
}

impl MispTarget {
    /// Validates `base` (the text after `misp:`) and the key against the options.
    pub fn new(base: &str, http: &HttpOptions, key: Option<Secret>) -> Result<Self, PushError> {
        let url = MISP.parse(base).map_err(PushError::Config)?;
        let endpoint = MISP.endpoint(url, http)?;
        Ok(MispTarget {
            endpoint,
            key: parse_key(key)?,
        })
    }
}

/// The key from `MISP_KEY`: MISP accepts only 40 letters and digits (reference `misp.md` §3.1),
/// so anything else is a configuration error that no request could fix. Surrounding white space
/// (a newline from a key file) is ignored. The key itself never appears in a message.
pub fn parse_key(key: Option<Secret>) -> Result<Secret, PushError> {
    let Some(key) = key
        .map(|k| k.expose().trim().to_owned())
        .filter(|k| !k.is_empty())
    else {
        return Err(PushError::Config(format!(
            "--to misp: needs the MISP API key in the environment variable {KEY_VAR} (keys are \
             never taken from arguments)"
        )));
    };
    if key.len() != 40 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(PushError::Config(format!(
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

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdefghijABCDEFGHIJ0123456789";

    fn http(allow_http: bool) -> HttpOptions {
        MISP.options(&CaFile { ca_file: None }, allow_http)
    }

    #[test]
    fn base_urls_keep_their_path_and_refuse_credentials() {
        assert_eq!(
            MISP.parse("https://example.org/misp").unwrap().as_str(),
            "https://example.org/misp/"
        );
        let error = MISP
            .parse("https://u:hunter2@misp.example.org/")
            .unwrap_err();
        assert!(
            error.contains(KEY_VAR) && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        let key = || Some(Secret::new(KEY));
        for ok in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "https://misp.example.org/",
        ] {
            assert!(MispTarget::new(ok, &http(false), key()).is_ok(), "{ok}");
        }
        let refused = MispTarget::new("http://misp.example.org/", &http(false), key());
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("--misp-allow-http"))
        );
        assert!(MispTarget::new("http://misp.example.org/", &http(true), key()).is_ok());
    }

    #[test]
    fn the_key_is_checked_and_never_shown() {
        assert!(parse_key(Some(Secret::new(format!("  {KEY}\n")))).is_ok());
        for bad in [None, Some(Secret::new("")), Some(Secret::new("   "))] {
            let error = parse_key(bad).unwrap_err().to_string();
            assert!(error.contains(KEY_VAR), "{error}");
        }
        let secret = "hunter2-is-not-a-key";
        let error = parse_key(Some(Secret::new(secret)))
            .unwrap_err()
            .to_string();
        assert!(error.contains("40 letters and digits"), "{error}");
        assert!(!error.contains(secret), "{error}");
        let debug = format!("{:?}", parse_key(Some(Secret::new(KEY))));
        assert!(!debug.contains(KEY), "{debug}");
    }
}
