//! `--to` specifications: parsed, then opened as sinks.

use std::path::PathBuf;

use ctiport_sink::ndjson::NdjsonSink;
use ctiport_sink::stix::{BundleSink, ChunkLimits, ChunkedBundleSink};
use ctiport_sink::{Sink, SinkError};

/// Options that shape what sinks write, gathered from the command line.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    pub chunk_limits: ChunkLimits,
    /// The TLP level of the run (`clear`, `green`, `amber`, `amber+strict`, `red`).
    pub tlp: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkSpec {
    StixFile(PathBuf),
    StixChunks(PathBuf),
    Ndjson(PathBuf),
}

impl SinkSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, target) = text
            .split_once(':')
            .ok_or_else(|| format!("sink '{text}' has no scheme (expected stix:, ndjson:)"))?;
        if target.is_empty() {
            return Err(format!("sink '{text}' has no target"));
        }
        match scheme {
            "stix" if target.ends_with('/') => Ok(SinkSpec::StixChunks(PathBuf::from(target))),
            "stix" => Ok(SinkSpec::StixFile(PathBuf::from(target))),
            "ndjson" => Ok(SinkSpec::Ndjson(PathBuf::from(target))),
            other => Err(format!(
                "unknown sink scheme '{other}:' in '{text}' (expected stix:, ndjson:)"
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
        assert!(SinkSpec::parse("stix:").is_err());
        assert!(SinkSpec::parse("out.json").is_err());
    }
}
