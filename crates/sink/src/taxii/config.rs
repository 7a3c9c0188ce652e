//! The options of `--to taxii:<collection url>` and its target, validated before anything is
//! sent: the collection URL and the API root derived from it, the plain-HTTP rule, the trust
//! anchors, and the HTTP Basic credentials.

use std::time::Duration;

use ctiport_net::{Authorization, Endpoint, HttpOptions, PlainHttp, Secret, UrlKind};
use serde::Deserialize;
use url::Url;

use super::sink::TaxiiSink;
use crate::options::whole_number;
use crate::push::{CaFile, Connection, PushError};
use crate::registry::{Built, SinkConfig, SinkContext};

/// `--to taxii:<collection url>`.
#[derive(Clone, Debug, clap::Args)]
pub struct TaxiiConfig {
    /// Allow a `taxii:` sink over plain http:// to a host other than loopback (credentials and
    /// intelligence then travel unencrypted).
    #[arg(long)]
    pub taxii_allow_http: bool,

    /// Seconds to wait for a TAXII server to finish a pending add-objects request.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = whole_number(1, u64::MAX))]
    pub taxii_status_timeout: u64,

    #[command(flatten)]
    pub ca: CaFile,
}

/// The credentials of a `taxii:` sink a config file may give, in place of `TAXII_USERNAME` and
/// `TAXII_PASSWORD`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxiiKeys {
    pub taxii_username: Option<String>,
    pub taxii_password: Option<Secret>,
}

impl SinkConfig for TaxiiConfig {
    const NAME: &'static str = "taxii:";
    type FileKeys = TaxiiKeys;
    const SECRET_KEYS: &'static [&'static str] = &["taxii_password"];

    fn check_target(target: &str) -> Result<(), String> {
        CollectionUrl::parse(target).map(drop)
    }

    fn build(self, target: &str, keys: TaxiiKeys, context: &SinkContext) -> Built {
        let username = context.credential(keys.taxii_username.map(Secret::new), USERNAME_VAR);
        let password = context.credential(keys.taxii_password, PASSWORD_VAR);
        let http = TAXII.options(&self.ca, self.taxii_allow_http);
        let status_timeout = Duration::from_secs(self.taxii_status_timeout);
        let target = basic_auth(username, password)
            .and_then(|auth| TaxiiTarget::new(target, &http, status_timeout, auth))
            .map_err(|e| e.in_sink("TAXII"))?;
        Ok(Box::new(TaxiiSink::new(target)))
    }
}

/// Environment variables that hold the HTTP Basic credentials.
pub const USERNAME_VAR: &str = "TAXII_USERNAME";
pub const PASSWORD_VAR: &str = "TAXII_PASSWORD";

/// How a `taxii:` sink connects (a request may take two minutes).
pub const TAXII: Connection = Connection {
    url: UrlKind {
        name: "a TAXII collection URL",
        example: "https://host/<api-root>/collections/<collection-id>/",
        credentials: "set TAXII_USERNAME and TAXII_PASSWORD instead",
    },
    plain_http: PlainHttp {
        exposes: "credentials and intelligence",
        allow_option: "--taxii-allow-http",
    },
    request_timeout: Duration::from_secs(120),
    max_attempts: 6,
};

/// HTTP Basic credentials: both halves, or neither (no authentication); only one of them is
/// always a mistake.
pub fn basic_auth(
    username: Option<Secret>,
    password: Option<Secret>,
) -> Result<Option<Authorization>, PushError> {
    let given = |value: Option<Secret>| value.filter(|v| !v.expose().is_empty());
    match (given(username), given(password)) {
        (Some(username), Some(password)) => Ok(Some(Authorization::Basic {
            username: username.expose().to_owned(),
            password,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(PushError::Config(format!(
            "{USERNAME_VAR} is set but {PASSWORD_VAR} is not"
        ))),
        (None, Some(_)) => Err(PushError::Config(format!(
            "{PASSWORD_VAR} is set but {USERNAME_VAR} is not"
        ))),
    }
}

/// A collection's URL, `{api-root}/collections/{id}/`, and what it tells.
#[derive(Clone, Debug)]
pub struct CollectionUrl {
    /// Always with the trailing slash.
    pub url: Url,
    /// `{api-root}/`.
    pub api_root: Url,
}

impl CollectionUrl {
    /// Splits `…/{api-root path}/collections/{id}/` into the collection URL (with its trailing
    /// slash), the API root URL and the collection id.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = TAXII.parse(text)?;
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        // Ends with ["collections", id, ""] (the trailing slash gives the empty last segment).
        let n = segments.len();
        if n < 3 || segments[n - 3] != "collections" || segments[n - 2].is_empty() {
            return Err(TAXII
                .url
                .not_one(text, "the path must end with /collections/<collection-id>/"));
        }
        let root_path = format!(
            "/{}",
            segments[..n - 3]
                .iter()
                .map(|s| format!("{s}/"))
                .collect::<String>()
        );
        let mut api_root = url.clone();
        api_root.set_path(&root_path);
        Ok(CollectionUrl { url, api_root })
    }
}

/// A validated TAXII target.
#[derive(Clone, Debug)]
pub struct TaxiiTarget {
    pub collection: CollectionUrl,
    pub endpoint: Endpoint,
    pub auth: Option<Authorization>,
    /// How long to wait for a `pending` status to become `complete`.
    pub status_timeout: Duration,
}

impl TaxiiTarget {
    /// Validates `collection` (the text after `taxii:`) against the options.
    pub fn new(
        collection: &str,
        http: &HttpOptions,
        status_timeout: Duration,
        auth: Option<Authorization>,
    ) -> Result<Self, PushError> {
        let collection = CollectionUrl::parse(collection).map_err(PushError::Config)?;
        let endpoint = TAXII.endpoint(collection.url.clone(), http)?;
        Ok(TaxiiTarget {
            collection,
            endpoint,
            auth,
            status_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, String) {
        match CollectionUrl::parse(text) {
            Ok(c) => (c.url.to_string(), c.api_root.to_string()),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn http(allow_http: bool) -> HttpOptions {
        TAXII.options(&CaFile { ca_file: None }, allow_http)
    }

    #[test]
    fn derives_the_api_root() {
        assert_eq!(
            parts("http://127.0.0.1:5000/api1/collections/472c94ae-3113-4e3e-a4dd-a9f4ac7471d4/"),
            (
                "http://127.0.0.1:5000/api1/collections/472c94ae-3113-4e3e-a4dd-a9f4ac7471d4/"
                    .into(),
                "http://127.0.0.1:5000/api1/".into(),
            )
        );
        // The trailing slash is added; API roots may be nested or at the server root.
        assert_eq!(
            parts("https://ti.example/taxii/root2/collections/abc").0,
            "https://ti.example/taxii/root2/collections/abc/"
        );
        assert_eq!(
            parts("https://ti.example/taxii/root2/collections/abc").1,
            "https://ti.example/taxii/root2/"
        );
        assert_eq!(
            parts("https://ti.example/collections/abc/").1,
            "https://ti.example/"
        );
    }

    #[test]
    fn rejects_what_is_not_a_collection_url() {
        for bad in [
            "ftp://h/api1/collections/x/",
            "https://h/api1/",
            "https://h/api1/collections/",
            "https://h/api1/collections/x/objects/",
            "https://h/api1/collections/x/?a=b",
            "not a url",
        ] {
            assert!(CollectionUrl::parse(bad).is_err(), "{bad}");
        }
        for with_password in [
            "https://u:hunter2@h/a/collections/x/",
            "ftp://u:hunter2@h/a/",
            "https://u:hun ter2@h/a/collections/x/",
        ] {
            let error = CollectionUrl::parse(with_password).unwrap_err();
            assert!(error.contains(USERNAME_VAR), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("hun ter2"),
                "{error}"
            );
        }
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        let timeout = Duration::from_secs(600);
        for ok in [
            "http://127.0.0.1:5000/a/collections/x/",
            "http://127.8.9.1/a/collections/x/",
            "http://[::1]:5000/a/collections/x/",
            "http://localhost:5000/a/collections/x/",
            "https://ti.example/a/collections/x/",
        ] {
            assert!(
                TaxiiTarget::new(ok, &http(false), timeout, None).is_ok(),
                "{ok}"
            );
        }
        let remote = "http://ti.example/a/collections/x/";
        let refused = TaxiiTarget::new(remote, &http(false), timeout, None);
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("--taxii-allow-http"))
        );
        assert!(TaxiiTarget::new(remote, &http(true), timeout, None).is_ok());
    }

    #[test]
    fn credentials_come_in_pairs_and_never_print() {
        let secret = |text: &str| Some(Secret::new(text));
        let auth = basic_auth(secret("admin"), secret("Hunter2-secret"))
            .unwrap()
            .unwrap();
        assert!(matches!(&auth, Authorization::Basic { username, password }
                if username == "admin" && password.expose() == "Hunter2-secret"));
        assert!(!format!("{auth:?}").contains("Hunter2"));
        assert!(matches!(basic_auth(None, None), Ok(None)));
        assert!(matches!(basic_auth(secret(""), secret("")), Ok(None)));
        assert!(basic_auth(secret("admin"), None).is_err());
        assert!(basic_auth(None, secret("x")).is_err());
    }
}
