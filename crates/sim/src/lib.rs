//! `ctiport-sim`: a local stand-in for the Microsoft Graph Threat Intelligence API, and a
//! generator of synthetic MDTI dumps. See docs/sim.md. Beside it, stand-ins for the Microsoft
//! services ctiport pushes to and signs in with (Sentinel, Defender, Entra, managed identity):
//! docs/standins.md.

// Tests may unwrap (a panic there is a failing test) and spell out their fixtures' types.
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)
)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod conn;
pub mod data;
pub mod defender;
pub mod faults;
pub mod generate;
pub mod graph;
pub mod identity;
pub mod json;
pub mod listing;
pub mod microsoft;
pub mod odata;
pub mod reqlog;
pub mod resources;
pub mod respond;
pub mod rng;
pub mod routes;
pub mod sentinel;
pub mod server;
pub mod stats;
pub mod target;
pub mod throttle;
pub mod timefmt;
pub mod token_faults;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data consistent
/// (counters, a token map, a bucket), and a panicking handler must not take the server down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
