//! `--to` specifications: parsed, then opened as sinks.

use std::path::PathBuf;

use std::time::Duration;

use ctiport_net::{HttpOptions, Secret};
use ctiport_sink::csv::{Column, CsvMode, CsvSink};
use ctiport_sink::misp::rest::{KEY_VAR, MispTarget};
use ctiport_sink::misp::{MispFeedSink, MispOptions, MispRestSink};
use ctiport_sink::ndjson::NdjsonSink;
use ctiport_sink::stix::{BundleSink, ChunkLimits, ChunkedBundleSink};
use ctiport_sink::taxii::config::{CollectionUrl, PASSWORD_VAR, USERNAME_VAR};
use ctiport_sink::taxii::{BasicAuth, TaxiiSink, TaxiiTarget};
use ctiport_sink::{Sink, SinkError};

pub use ctiport_net::redact_userinfo;

/// Options that shape what one sink writes, gathered from the command line and the sink's
/// `[[sinks]]` table of a config file.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    pub chunk_limits: ChunkLimits,
    /// The TLP level of the run (`clear`, `green`, `amber`, `amber+strict`, `red`).
    pub tlp: String,
    /// Options of a `misp-feed:` or `misp:` sink (the events it carries).
    pub misp: MispOptions,
    /// Options of a `misp:` sink (the connection).
    pub misp_rest: HttpOptions,
    /// Columns of a `csv:` sink.
    pub csv_columns: Vec<Column>,
    /// Snapshot or delta, of a `csv:` sink.
    pub csv_mode: CsvMode,
    /// Options of a `taxii:` sink.
    pub taxii: HttpOptions,
    pub taxii_status_timeout: Duration,
    /// Credentials a config file gives for this sink in place of the environment variables.
    pub credentials: SinkCredentials,
}

/// Credentials from a config file's `[[sinks]]` table (`taxii_username`, `taxii_password`,
/// `misp_key`): each takes the place of its environment variable for that sink.
#[derive(Clone, Debug, Default)]
pub struct SinkCredentials {
    pub taxii_username: Option<String>,
    pub taxii_password: Option<Secret>,
    pub misp_key: Option<Secret>,
}

impl SinkCredentials {
    /// The value of the environment variable `name` as this sink sees it: the config file's,
    /// when it gives one, else the process environment's.
    fn var(&self, name: &str) -> Option<String> {
        let given = match name {
            USERNAME_VAR => self.taxii_username.clone(),
            PASSWORD_VAR => self.taxii_password.as_ref().map(|s| s.expose().to_owned()),
            KEY_VAR => self.misp_key.as_ref().map(|s| s.expose().to_owned()),
            _ => None,
        };
        given.or_else(|| std::env::var(name).ok())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    StixFile(PathBuf),
    StixChunks(PathBuf),
    Ndjson(PathBuf),
    /// A MISP feed directory.
    MispFeed(PathBuf),
    Csv(PathBuf),
    /// A TAXII 2.1 collection URL.
    Taxii(String),
    /// A MISP instance's base URL.
    Misp(String),
}

impl SinkSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, target) = text.split_once(':').ok_or_else(|| {
            format!(
                "sink '{text}' has no scheme (expected stix:, ndjson:, taxii:, misp:, misp-feed:, csv:)"
            )
        })?;
        if target.is_empty() {
            return Err(format!("sink '{text}' has no target"));
        }
        match scheme {
            "stix" if target.ends_with('/') => Ok(SinkSpec::StixChunks(PathBuf::from(target))),
            "stix" => Ok(SinkSpec::StixFile(PathBuf::from(target))),
            "ndjson" => Ok(SinkSpec::Ndjson(PathBuf::from(target))),
            "misp-feed" => Ok(SinkSpec::MispFeed(PathBuf::from(target))),
            "csv" => Ok(SinkSpec::Csv(PathBuf::from(target))),
            "taxii" => {
                // Checked here, so that no message ever echoes a URL with a password in it.
                CollectionUrl::parse(target)?;
                Ok(SinkSpec::Taxii(target.to_owned()))
            }
            "misp" => {
                ctiport_sink::misp::rest::config::parse_base_url(target)?;
                Ok(SinkSpec::Misp(target.to_owned()))
            }
            other => Err(format!(
                "unknown sink scheme '{other}:' in '{text}' (expected stix:, ndjson:, taxii:, misp:, misp-feed:, csv:)"
            )),
        }
    }

    pub fn open(&self, settings: &SinkSettings) -> Result<Box<dyn Sink>, SinkError> {
        Ok(match self {
            SinkSpec::StixFile(path) => Box::new(BundleSink::create(path)?),
            SinkSpec::StixChunks(dir) => {
                Box::new(ChunkedBundleSink::create(dir, settings.chunk_limits)?)
            }
            SinkSpec::Ndjson(path) => Box::new(NdjsonSink::create(path)?),
            SinkSpec::MispFeed(dir) => Box::new(MispFeedSink::create(dir, settings.misp.clone())?),
            SinkSpec::Csv(path) => Box::new(CsvSink::create(
                path,
                &settings.csv_columns,
                &settings.tlp,
                settings.csv_mode,
            )?),
            SinkSpec::Taxii(url) => {
                // Credentials only from the environment (or a config file's references to it),
                // never from arguments.
                let var = |name| settings.credentials.var(name);
                let auth = BasicAuth::pair(var(USERNAME_VAR), var(PASSWORD_VAR).map(Secret::new))
                    .map_err(|e| e.in_sink("TAXII"))?;
                let target =
                    TaxiiTarget::new(url, &settings.taxii, settings.taxii_status_timeout, auth)
                        .map_err(|e| e.in_sink("TAXII"))?;
                Box::new(TaxiiSink::new(target))
            }
            SinkSpec::Misp(url) => {
                // The key only from the environment (or a config file's reference to it), never
                // from arguments.
                let key = settings.credentials.var(KEY_VAR).map(Secret::new);
                let target = MispTarget::new(url, &settings.misp_rest, key)
                    .map_err(|e| e.in_sink("MISP"))?;
                Box::new(MispRestSink::new(target, settings.misp.clone())?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_specs() {
        assert_eq!(
            SinkSpec::parse("stix:out/bundle.json"),
            Ok(SinkSpec::StixFile("out/bundle.json".into()))
        );
        assert_eq!(
            SinkSpec::parse("stix:out/chunks/"),
            Ok(SinkSpec::StixChunks("out/chunks/".into()))
        );
        assert_eq!(
            SinkSpec::parse("ndjson:o.ndjson"),
            Ok(SinkSpec::Ndjson("o.ndjson".into()))
        );
        assert!(
            SinkSpec::parse("kafka:x")
                .unwrap_err()
                .contains("unknown sink scheme")
        );
        assert_eq!(
            SinkSpec::parse("taxii:https://ti.example/api1/collections/c1/"),
            Ok(SinkSpec::Taxii(
                "https://ti.example/api1/collections/c1/".into()
            ))
        );
        assert_eq!(
            SinkSpec::parse("misp-feed:out/feed"),
            Ok(SinkSpec::MispFeed("out/feed".into()))
        );
        assert_eq!(
            SinkSpec::parse("misp:https://misp.example.org"),
            Ok(SinkSpec::Misp("https://misp.example.org".into()))
        );
        assert!(
            SinkSpec::parse("misp:https://u:hunter2@misp.example.org/")
                .is_err_and(|e| !e.contains("hunter2"))
        );
        assert_eq!(
            SinkSpec::parse("csv:out/i.csv"),
            Ok(SinkSpec::Csv("out/i.csv".into()))
        );
        assert!(SinkSpec::parse("stix:").is_err());
        assert!(SinkSpec::parse("out.json").is_err());
    }
}
