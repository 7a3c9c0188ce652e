//! `--to taxii:<collection url>`: push every object once to a TAXII 2.1 collection.
//!
//! The sink has the anatomy of a Vector sink, one concern per file:
//!
//! * [`config`]: the options, and the validated target (collection URL → API root, plain-HTTP
//!   rule, credentials from `TAXII_USERNAME`/`TAXII_PASSWORD` or the config file, extra CA);
//! * [`envelope`]: packing pre-serialized objects into `{"objects":[…]}` envelopes by exact byte
//!   size under the API root's `max_content_length`;
//! * [`service`]: the HTTP requests, with TAXII 2.1 headers, retries and clear refusals;
//! * [`delivery`]: one envelope's POST, 413 halving, status polling and per-object accounting
//!   (duplicates already in the collection are not failures);
//! * [`sink`]: the driver that feeds records through the packer and delivers each full envelope.

mod config;
mod delivery;
mod envelope;
mod resources;
mod service;
mod sink;

#[cfg(test)]
mod tests;

pub use config::TaxiiConfig;
