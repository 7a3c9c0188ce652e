//! The options of `--to csv:<file>`: its columns and what it holds.

use std::fmt;
use std::path::Path;

use super::sink::CsvSink;
use crate::registry::{Built, NoFileKeys, SinkConfig, SinkContext};

/// `--to csv:<file>`.
#[derive(Clone, Debug, clap::Args)]
pub struct CsvConfig {
    /// Columns of `csv:` sinks, comma-separated, in order (also available: indicator_id).
    #[arg(long, value_name = "LIST", default_value_t = Columns::default(), value_parser = Columns::parse)]
    pub csv_columns: Columns,

    /// What `csv:` sinks hold: snapshot (every current indicator) or delta (with --state, only
    /// what changed since the sink's last run, each row led by an `action` column: new, changed
    /// or revoked; without --state every row is new).
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        default_value = "snapshot",
        ignore_case = true
    )]
    pub csv_mode: CsvMode,
}

impl SinkConfig for CsvConfig {
    const NAME: &'static str = "csv:";
    type FileKeys = NoFileKeys;

    fn build(self, target: &str, _: NoFileKeys, context: &SinkContext) -> Built {
        Ok(Box::new(CsvSink::create(
            Path::new(target),
            &self.csv_columns.0,
            &context.tlp,
            self.csv_mode,
        )?))
    }
}

/// The columns of a CSV file, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns(pub Vec<Column>);

impl Columns {
    /// `a,b,c` (see [`Column::parse_list`]).
    pub fn parse(text: &str) -> Result<Columns, String> {
        Column::parse_list(text).map(Columns)
    }
}

impl Default for Columns {
    fn default() -> Self {
        Columns(Column::DEFAULT.to_vec())
    }
}

impl fmt::Display for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|c| c.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// A column of the CSV export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// The normalized indicator value.
    Value,
    /// Its value type (`domain`, `ipv4`, `ipv4-cidr`, `url`, `sha256`, `x509-sha1`, …).
    Type,
    ProfileId,
    ProfileTitle,
    /// `actor` or `tool`.
    Kind,
    /// `microsoft`, `osint`, `public`, or empty.
    Source,
    FirstSeen,
    LastSeen,
    Confidence,
    Tlp,
    /// The id of the STIX indicator the value became.
    StixId,
    /// The MDTI indicator id (not in the default set).
    IndicatorId,
}

impl Column {
    pub const ALL: [Column; 12] = [
        Column::Value,
        Column::Type,
        Column::ProfileId,
        Column::ProfileTitle,
        Column::Kind,
        Column::Source,
        Column::FirstSeen,
        Column::LastSeen,
        Column::Confidence,
        Column::Tlp,
        Column::StixId,
        Column::IndicatorId,
    ];

    /// The columns written without `--csv-columns`: all but the MDTI indicator id.
    pub const DEFAULT: &'static [Column] = Column::ALL.split_at(11).0;

    /// The column's name, in the header and in `--csv-columns`.
    pub fn name(self) -> &'static str {
        match self {
            Column::Value => "value",
            Column::Type => "type",
            Column::ProfileId => "profile_id",
            Column::ProfileTitle => "profile_title",
            Column::Kind => "kind",
            Column::Source => "source",
            Column::FirstSeen => "first_seen",
            Column::LastSeen => "last_seen",
            Column::Confidence => "confidence",
            Column::Tlp => "tlp",
            Column::StixId => "stix_id",
            Column::IndicatorId => "indicator_id",
        }
    }

    /// Parses `a,b,c`: every name must be known, none repeated, at least one.
    pub fn parse_list(text: &str) -> Result<Vec<Column>, String> {
        let known = || {
            Column::ALL
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut columns = Vec::new();
        for name in text.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(format!(
                    "empty column name in '{text}' (known: {})",
                    known()
                ));
            }
            let column = Column::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .ok_or_else(|| format!("unknown CSV column '{name}' (known: {})", known()))?;
            if columns.contains(&column) {
                return Err(format!("CSV column '{name}' is given twice"));
            }
            columns.push(column);
        }
        Ok(columns)
    }
}

/// `--csv-mode`: what a CSV file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CsvMode {
    /// Every current indicator occurrence.
    #[default]
    Snapshot,
    /// What changed since the sink's last acknowledged run (`--state`), with an `action` column
    /// first.
    Delta,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_column_lists() {
        assert_eq!(
            Column::parse_list("value, stix_id,indicator_id"),
            Ok(vec![Column::Value, Column::StixId, Column::IndicatorId])
        );
        assert!(
            Column::parse_list("value,nope")
                .unwrap_err()
                .contains("unknown CSV column 'nope'")
        );
        assert!(
            Column::parse_list("value,value")
                .unwrap_err()
                .contains("twice")
        );
        assert!(Column::parse_list("").is_err());
        assert!(Column::parse_list("value,").is_err());
    }

    #[test]
    fn the_default_columns_read_back() {
        assert_eq!(
            Columns::parse(&Columns::default().to_string()),
            Ok(Columns::default())
        );
    }
}
