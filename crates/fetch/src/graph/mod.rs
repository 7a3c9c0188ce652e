//! `--from graph`: the live Microsoft Graph Threat Intelligence API.

mod auth;
mod capture;
// `client` and `config` stay reachable by path while the CLI names `client::origin_of` (which
// moves to the shared HTTP piece) and `config::DEFAULT_*_URL` (also at the crate root).
pub mod client;
pub mod config;
mod enricher;
mod error;
#[cfg(test)]
mod loopback;
mod throttle;
pub(crate) mod walk;

pub use config::{Credentials, GraphConfig};
pub use error::GraphError;
