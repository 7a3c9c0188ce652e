//! `--from graph`: the live Microsoft Graph Threat Intelligence API.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod throttle;
pub mod walk;

pub use config::{Credentials, GraphConfig};
pub use error::GraphError;
