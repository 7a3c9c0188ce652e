//! `--from graph`: the live Microsoft Graph Threat Intelligence API.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
#[cfg(test)]
mod loopback;
pub mod throttle;
pub mod walk;

pub use config::{Credentials, GraphConfig};
pub use ctiport_model::net::Secret;
pub use error::GraphError;
