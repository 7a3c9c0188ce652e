//! HTTP plumbing shared by the sinks that push over the network (`taxii:`, `misp:`): the client
//! (TLS trust, same-origin redirects, User-Agent), the request loop with retries and backoff,
//! secrets that never print, and the plain-HTTP rule.

pub mod client;
pub mod retry;

pub use client::{
    Answer, Secret, SendError, build_client, describe, is_loopback, plain_text_detail,
    read_ca_file, send,
};
