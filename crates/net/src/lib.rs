//! ctiport-net: the one HTTP endpoint piece that every client of a network service shares — the
//! live Graph source and its token endpoint, the TAXII and MISP sinks, and the Microsoft sinks to
//! come. One concern per module:
//!
//! * [`secret`]: [`Secret`], a string that never shows itself, and [`redact_userinfo`];
//! * [`url`]: which URLs a client accepts (absolute `http(s)`, no credentials in them, plain
//!   `http://` only to loopback unless allowed) and origins;
//! * [`client`]: reqwest clients (rustls, extra trust anchors from `--ca-file`, timeouts, proxies
//!   from the environment, redirects only within the target's origin): [`HttpOptions`] are
//!   checked into an [`Endpoint`] at configuration time, which makes the [`HttpClient`];
//! * [`classify`]: which answers and transport errors are worth another try, each with its
//!   likely [`Cause`];
//! * [`retry`]: `Retry-After` in all its forms and full-jitter backoff;
//! * [`send`]: the request loop of the pushing sinks, retrying what can succeed on retry.

// Tests may unwrap (a panic there is a failing test).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod classify;
pub mod client;
pub mod retry;
pub mod secret;
pub mod send;
pub mod url;

pub use classify::{Cause, is_retryable, likely_cause};
pub use client::{
    Authorization, Dialect, Endpoint, HttpClient, HttpOptions, client_builder, describe,
    plain_text_detail,
};
pub use retry::{backoff, parse_retry_after, retry_after};
pub use secret::{Secret, redact_userinfo};
pub use send::{Answer, Failure};
pub use url::{PlainHttp, UrlKind, is_loopback, origin_of, parse_http_url};
