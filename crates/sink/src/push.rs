//! What the sinks that push to a server share (TAXII, MISP, and the Microsoft sinks to come):
//! their error, the link `begin` establishes, and the count of objects the server refused.
//! The HTTP side (client, URL rules, retries) is `ctiport-net`'s.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ctiport_net::{Endpoint, HttpOptions, PlainHttp, UrlKind, parse_http_url};
use tokio::runtime::Handle;
use url::Url;

use crate::SinkError;

/// `--ca-file`, an option of every sink that talks to a server over https.
#[derive(Clone, Debug, clap::Args)]
pub struct CaFile {
    /// Extra CA certificate(s) (PEM) to trust for https:// sinks, for servers with a private CA.
    /// TLS verification is always on.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// How a pushing sink connects: what its URL is called, what plain HTTP would expose, how long a
/// request may take and how often it is tried.
pub struct Connection {
    pub url: UrlKind,
    pub plain_http: PlainHttp,
    pub request_timeout: Duration,
    /// Tries per request, the first included, for 429, 5xx and connection errors.
    pub max_attempts: u32,
}

impl Connection {
    /// The connection options of a sink with these trust anchors and plain-HTTP choice.
    pub fn options(&self, ca: &CaFile, allow_http: bool) -> HttpOptions {
        HttpOptions {
            allow_http,
            ca_file: ca.ca_file.clone(),
            request_timeout: self.request_timeout,
            max_attempts: self.max_attempts,
        }
    }

    /// The sink's URL (see [`parse_http_url`]).
    pub fn parse(&self, text: &str) -> Result<Url, String> {
        parse_http_url(text, &self.url)
    }

    /// The endpoint at `url`, under the plain-HTTP rule, with the trust anchors read.
    pub fn endpoint(&self, url: Url, options: &HttpOptions) -> Result<Endpoint, PushError> {
        Endpoint::new(url, options, &self.plain_http).map_err(PushError::Config)
    }
}

/// What stops a push, each message naming the likely cause. (An object the server refuses does
/// not stop it: it is counted in [`Failures`] and the run fails at the end.)
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The options are wrong before anything is sent.
    #[error("{0}")]
    Config(String),
    /// The server answered, and the answer means the push cannot go on (a refused key or role,
    /// a read-only collection, an answer that cannot be read).
    #[error("{0}")]
    Refused(String),
    /// No answer worth reading: an untrusted certificate, or retries that ran out.
    #[error(transparent)]
    Http(#[from] ctiport_net::Failure),
}

impl PushError {
    /// The error as the sink named `sink` (`TAXII`) reports it.
    pub fn in_sink(self, sink: &str) -> SinkError {
        SinkError::Other(format!("{sink}: {self}"))
    }
}

/// What `begin` established: the runtime the sink's blocking thread drives its requests on, and
/// the service that sends them.
pub struct Link<S> {
    runtime: Handle,
    pub service: S,
}

impl<S> Link<S> {
    /// A link on the runtime of the calling thread (the pipeline runs each sink on a blocking
    /// thread of its runtime).
    pub fn new(sink: &str, service: S) -> Result<Self, PushError> {
        let runtime = Handle::try_current().map_err(|e| {
            PushError::Config(format!("the {sink} sink needs a tokio runtime: {e}"))
        })?;
        Ok(Link { runtime, service })
    }

    /// Runs `future` (requests of the service) to its end.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// The link of a sink that has begun.
pub fn begun<'a, S>(link: &'a Option<Link<S>>, sink: &str) -> Result<&'a Link<S>, PushError> {
    link.as_ref().ok_or_else(|| not_begun(sink))
}

/// The error of a sink used before `begin`.
pub fn not_begun(sink: &str) -> PushError {
    PushError::Config(format!("the {sink} sink was used before begin"))
}

/// Objects the server refused while the rest was delivered: every one counted, the first few
/// named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: u64,
    /// `<object>: <reason>` of the first [`Failures::LISTED`].
    pub listed: Vec<String>,
}

impl Failures {
    /// Failures named with their reason (all are counted).
    pub const LISTED: usize = 20;
    /// Failures after which a push stops: past this, the cause is systematic.
    pub const MAX: u64 = 1_000;

    /// Counts `count` refused objects, named by `text` while the list has room.
    pub fn add(&mut self, count: u64, text: impl FnOnce() -> String) {
        self.count += count;
        if self.listed.len() < Self::LISTED {
            self.listed.push(text());
        }
    }

    pub fn too_many(&self) -> bool {
        self.count >= Self::MAX
    }

    /// The named failures, and how many more there are.
    pub fn named(&self) -> String {
        let more = self.count.saturating_sub(self.listed.len() as u64);
        let more = if more > 0 {
            format!("; … and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", self.listed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_all_counted_and_the_first_named() {
        let mut failures = Failures::default();
        for n in 0..25 {
            failures.add(2, || format!("o{n}: refused"));
        }
        assert_eq!(failures.count, 50);
        assert_eq!(failures.listed.len(), Failures::LISTED);
        assert!(failures.named().ends_with("o19: refused; … and 30 more"));
        assert!(!failures.too_many());
        failures.add(Failures::MAX, || "many".into());
        assert!(failures.too_many());
    }
}
