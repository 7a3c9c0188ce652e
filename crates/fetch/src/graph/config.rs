//! Settings of the live Graph source.

use std::time::Duration;

use ctiport_model::selection::ProfileSelection;

use ctiport_net::{Secret, redact_userinfo};

pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
pub const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Client-credentials identity of the app registration (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
/// `AZURE_CLIENT_SECRET`, as the Azure identity libraries read them).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com/v1.0` or `…/beta`, without a trailing slash.
    pub graph_url: String,
    pub authority_url: String,
    pub credentials: Credentials,
    /// Requests per second for the whole process.
    pub rate: f64,
    /// Profiles whose indicator pages are fetched at the same time.
    pub concurrency: usize,
    pub request_timeout: Duration,
    /// Most pages followed in one collection (guards against a server that pages forever).
    pub max_pages: usize,
    /// Tries per request, the first included.
    pub max_attempts: u32,
    /// Consecutive failed attempts, across all workers, after which the run stops.
    pub breaker_threshold: u32,
    /// `$top` to ask for; `None` lets the service choose.
    pub page_size: Option<u32>,
    /// `--kind actor|tool` (sent as `$filter=kind eq '…'`, and checked on what comes back) and
    /// `--profile <id>` (only these, fetched by id, in the order given).
    pub selection: ProfileSelection,
    /// `--enrich`: host and reputation lookups.
    pub enrich: Option<crate::enrich::EnrichOptions>,
    /// Only hosts of indicators this gate wants are looked up (the export filters).
    pub enrich_gate: Option<crate::enrich::EnrichGate>,
}

impl GraphConfig {
    pub fn new(credentials: Credentials) -> Self {
        GraphConfig {
            graph_url: DEFAULT_GRAPH_URL.into(),
            authority_url: DEFAULT_AUTHORITY_URL.into(),
            credentials,
            rate: 10.0,
            concurrency: 4,
            request_timeout: Duration::from_secs(60),
            max_pages: 100_000,
            max_attempts: 8,
            breaker_threshold: 30,
            page_size: None,
            selection: ProfileSelection::default(),
            enrich: None,
            enrich_gate: None,
        }
    }

    /// `{graph}/security/threatIntelligence`
    pub fn ti_base(&self) -> String {
        format!(
            "{}/security/threatIntelligence",
            self.graph_url.trim_end_matches('/')
        )
    }

    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_url.trim_end_matches('/'),
            ctiport_model::pct::pct(&self.credentials.tenant_id)
        )
    }
}

/// Checks `--graph-url` or `--authority-url` (named by `option`): an absolute URL without
/// credentials. The client secret comes from the environment; a password written into the URL
/// would reach logs and errors, so it is refused, and the message never shows it.
pub fn check_url(option: &str, text: &str) -> Result<(), String> {
    let shown = redact_userinfo(text);
    let url =
        url::Url::parse(text).map_err(|_| format!("{option} '{shown}' is not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() || shown != text {
        return Err(format!(
            "{option} '{shown}': credentials in the URL are not accepted (they would end up in \
             logs); the app's secret comes from AZURE_CLIENT_SECRET"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_are_refused_without_showing_them() {
        assert_eq!(check_url("--graph-url", DEFAULT_GRAPH_URL), Ok(()));
        assert_eq!(
            check_url("--authority-url", "http://127.0.0.1:8080"),
            Ok(())
        );
        for url in [
            "https://user:s3cret@graph.example/v1.0",
            "https://s3cret@graph.example/v1.0",
            "https://user:s3cret@login.example",
        ] {
            let error = check_url("--authority-url", url).unwrap_err();
            assert!(
                error.starts_with("--authority-url 'https://***@") && error.contains("credentials"),
                "{error}"
            );
            assert!(!error.contains("s3cret"), "{error}");
        }
        let error = check_url("--graph-url", "graph.microsoft.com").unwrap_err();
        assert_eq!(
            error,
            "--graph-url 'graph.microsoft.com' is not an absolute URL"
        );
    }
}
