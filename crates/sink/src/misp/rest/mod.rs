//! `--to misp:<base url>`: push every event to a MISP instance over its REST API, with MISP's own
//! upsert (reference `misp.md` §3.4).
//!
//! The events are the feed's ([`crate::misp::builder`]): one per profile, split into linked
//! events when large. One concern per file:
//!
//! * [`config`]: the options, and the validated target (base URL, plain-HTTP rule, the key from
//!   `MISP_KEY` or the config file, the extra CA);
//! * [`stored`]: the instance's answers, read leniently (numbers as strings, `0`/`1` booleans);
//! * [`upsert`]: the pure decisions: what an edit must carry (new and changed attributes newer
//!   than their copies, retractions of attributes that left the profile, tags, the report, a
//!   newer event timestamp), and the check of the instance's answer;
//! * [`service`]: the HTTP requests, with retries and clear refusals;
//! * [`sink`]: the driver.

mod config;
mod service;
mod sink;
mod stored;
mod upsert;

#[cfg(test)]
mod tests;

pub use config::MispRestConfig;
