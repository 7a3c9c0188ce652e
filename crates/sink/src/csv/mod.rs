//! `--to csv:<file>`: one CSV row per indicator occurrence ([`sink`]), with the columns and mode
//! of its [`config`].

mod config;
mod sink;

pub use config::CsvConfig;
