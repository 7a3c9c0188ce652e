//! The user-facing options of `--to taxii:<collection url>`, validated before anything is sent:
//! the collection URL and the API root derived from it, the plain-HTTP rule, the credentials
//! (from the environment only) and the trust anchors.

use ctiport_model::net::redact_userinfo;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::error::TaxiiError;
pub use crate::http::{Secret, is_loopback};

/// Environment variables that hold the HTTP Basic credentials.
pub const USERNAME_VAR: &str = "TAXII_USERNAME";
pub const PASSWORD_VAR: &str = "TAXII_PASSWORD";

/// How long to wait for a `pending` status to become `complete`, unless told otherwise.
pub const DEFAULT_STATUS_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one HTTP request may take before it is abandoned (and retried).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Tries per request, the first included, for 429, 5xx and connection errors.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;

/// Options that apply to every TAXII sink of a run, from the command line.
#[derive(Clone, Debug)]
pub struct TaxiiOptions {
    /// Allow `http://` to hosts other than loopback (credentials then travel in clear text).
    pub allow_http: bool,
    /// An extra PEM certificate (or bundle) to trust, for servers with a private CA.
    pub ca_file: Option<PathBuf>,
    pub status_timeout: Duration,
    pub request_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for TaxiiOptions {
    fn default() -> Self {
        TaxiiOptions {
            allow_http: false,
            ca_file: None,
            status_timeout: DEFAULT_STATUS_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

/// HTTP Basic credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    /// Reads `TAXII_USERNAME` and `TAXII_PASSWORD` through `lookup` (the process environment in
    /// the binary). Neither set: no authentication. Only one of them set: an error, since that is
    /// always a mistake.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, TaxiiError> {
        let read = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (read(USERNAME_VAR), read(PASSWORD_VAR)) {
            (Some(username), Some(password)) => Ok(Some(Credentials {
                username,
                password: Secret::new(password),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(TaxiiError::Config(format!(
                "{USERNAME_VAR} is set but {PASSWORD_VAR} is not"
            ))),
            (None, Some(_)) => Err(TaxiiError::Config(format!(
                "{PASSWORD_VAR} is set but {USERNAME_VAR} is not"
            ))),
        }
    }
}

/// A validated TAXII target.
#[derive(Clone, Debug)]
pub struct TaxiiConfig {
    /// `{api-root}/collections/{id}/`, always with the trailing slash.
    pub collection_url: Url,
    /// `{api-root}/`, derived from the collection URL.
    pub api_root: Url,
    pub collection_id: String,
    pub credentials: Option<Credentials>,
    /// PEM bytes of the extra trust anchors, read at configuration time.
    pub ca_pem: Option<Vec<u8>>,
    pub status_timeout: Duration,
    pub request_timeout: Duration,
    pub max_attempts: u32,
}

impl TaxiiConfig {
    /// Validates `collection` (the text after `taxii:`) against the options.
    pub fn new(
        collection: &str,
        options: &TaxiiOptions,
        credentials: Option<Credentials>,
    ) -> Result<Self, TaxiiError> {
        let (collection_url, api_root, collection_id) = parse_collection_url(collection)?;
        if collection_url.scheme() == "http" && !options.allow_http && !is_loopback(&collection_url)
        {
            return Err(TaxiiError::Config(format!(
                "refusing plain http:// to {}: credentials and intelligence would travel \
                 unencrypted; use https://, or pass --taxii-allow-http if you really mean it",
                collection_url.host_str().unwrap_or_default()
            )));
        }
        let ca_pem = match &options.ca_file {
            None => None,
            Some(path) => Some(crate::http::read_ca_file(path).map_err(TaxiiError::Config)?),
        };
        Ok(TaxiiConfig {
            collection_url,
            api_root,
            collection_id,
            credentials,
            ca_pem,
            status_timeout: options.status_timeout,
            request_timeout: options.request_timeout,
            max_attempts: options.max_attempts.max(1),
        })
    }
}

/// Splits `…/{api-root path}/collections/{id}/` into the collection URL (with its trailing slash),
/// the API root URL and the collection id.
pub fn parse_collection_url(text: &str) -> Result<(Url, Url, String), TaxiiError> {
    let shown = redact_userinfo(text);
    let bad = |why: &str| {
        TaxiiError::Config(format!(
            "'{shown}' is not a TAXII collection URL ({why}); expected \
             https://host/<api-root>/collections/<collection-id>/"
        ))
    };
    let mut url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() || shown != text {
        return Err(TaxiiError::Config(format!(
            "credentials in the collection URL are not accepted (they would end up in logs); \
             set {USERNAME_VAR} and {PASSWORD_VAR} instead"
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
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    // Ends with ["collections", id, ""] (the trailing slash gives the empty last segment).
    let n = segments.len();
    if n < 3 || segments[n - 3] != "collections" || segments[n - 2].is_empty() {
        return Err(bad("the path must end with /collections/<collection-id>/"));
    }
    let collection_id = segments[n - 2].to_owned();
    let root_path = format!(
        "/{}",
        segments[..n - 3]
            .iter()
            .map(|s| format!("{s}/"))
            .collect::<String>()
    );
    let mut api_root = url.clone();
    api_root.set_path(&root_path);
    Ok((url, api_root, collection_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, String, String) {
        match parse_collection_url(text) {
            Ok((c, a, id)) => (c.to_string(), a.to_string(), id),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn derives_the_api_root() {
        assert_eq!(
            parts("http://127.0.0.1:5000/api1/collections/472c94ae-3113-4e3e-a4dd-a9f4ac7471d4/"),
            (
                "http://127.0.0.1:5000/api1/collections/472c94ae-3113-4e3e-a4dd-a9f4ac7471d4/"
                    .into(),
                "http://127.0.0.1:5000/api1/".into(),
                "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4".into()
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
            assert!(parse_collection_url(bad).is_err(), "{bad}");
        }
        for with_password in [
            "https://u:hunter2@h/a/collections/x/",
            "ftp://u:hunter2@h/a/",
            "https://u:hun ter2@h/a/collections/x/",
        ] {
            let error = parse_collection_url(with_password)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(USERNAME_VAR), "{error}");
            assert!(
                !error.contains("hunter2") && !error.contains("hun ter2"),
                "{error}"
            );
        }
        assert_eq!(redact_userinfo("https://a:b@h/x@y"), "https://***@h/x@y");
        assert_eq!(redact_userinfo("https://h/x@y"), "https://h/x@y");
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        let options = TaxiiOptions::default();
        for ok in [
            "http://127.0.0.1:5000/a/collections/x/",
            "http://127.8.9.1/a/collections/x/",
            "http://[::1]:5000/a/collections/x/",
            "http://localhost:5000/a/collections/x/",
            "https://ti.example/a/collections/x/",
        ] {
            assert!(TaxiiConfig::new(ok, &options, None).is_ok(), "{ok}");
        }
        let remote = "http://ti.example/a/collections/x/";
        let refused = TaxiiConfig::new(remote, &options, None);
        assert!(
            refused
                .err()
                .is_some_and(|e| e.to_string().contains("--taxii-allow-http"))
        );
        let allowed = TaxiiOptions {
            allow_http: true,
            ..TaxiiOptions::default()
        };
        assert!(TaxiiConfig::new(remote, &allowed, None).is_ok());
    }

    #[test]
    fn credentials_come_in_pairs_and_never_print() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = Credentials::from_lookup(env(&[
            (USERNAME_VAR, "admin"),
            (PASSWORD_VAR, "Hunter2-secret"),
        ]));
        let creds = match both {
            Ok(Some(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(creds.username, "admin");
        assert_eq!(creds.password.expose(), "Hunter2-secret");
        assert!(!format!("{creds:?}").contains("Hunter2"));
        assert!(matches!(Credentials::from_lookup(env(&[])), Ok(None)));
        assert!(Credentials::from_lookup(env(&[(USERNAME_VAR, "admin")])).is_err());
        assert!(Credentials::from_lookup(env(&[(PASSWORD_VAR, "x")])).is_err());
    }
}
