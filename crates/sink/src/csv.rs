//! `--to csv:<file>`: one row per indicator occurrence (an indicator listed by three profiles gives
//! three rows), for SIEMs, firewalls and spreadsheets.
//!
//! The file is RFC 4180 CSV (header row, `,` separator, CRLF line ends, fields quoted when they
//! hold `,`, `"` or a line break), written with the `csv` crate. Columns are chosen and ordered
//! with `--csv-columns`.
//!
//! Spreadsheet formula injection is neutralized: a cell that starts with `=`, `+`, `-`, `@`, a tab
//! or a carriage return gets a leading `'`, so that Excel, LibreOffice and Google Sheets show it
//! as text instead of evaluating it (a profile title such as `=HYPERLINK(…)` stays inert). Indicator
//! values never start with these characters except in rare e-mail addresses; a consumer that
//! needs the raw value strips one leading `'` from such cells.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ctiport_model::record::{Mapped, MappedIndicator};
use ctiport_model::stix::EncodedObject;

use crate::io_adapter::{AtomicWriter, csv_error};
use crate::{Sink, SinkError, SinkReport};

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

    /// The columns written without `--csv-columns`.
    pub const DEFAULT: [Column; 11] = [
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
    ];

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

/// A cell a spreadsheet would evaluate as a formula gets a leading `'`.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

struct ProfileFacts {
    title: String,
    kind: String,
}

pub struct CsvSink {
    path: PathBuf,
    writer: ::csv::Writer<AtomicWriter>,
    columns: Vec<Column>,
    tlp: String,
    /// Title and kind of every profile (grows with profiles, not with indicators).
    profiles: HashMap<String, ProfileFacts>,
    rows: u64,
}

impl CsvSink {
    pub fn create(path: &Path, columns: &[Column], tlp: &str) -> Result<Self, SinkError> {
        if columns.is_empty() {
            return Err(SinkError::Other("no CSV columns".into()));
        }
        let writer = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .quote_style(::csv::QuoteStyle::Necessary)
            .from_writer(AtomicWriter::create(path)?);
        let mut sink = CsvSink {
            path: path.to_owned(),
            writer,
            columns: columns.to_vec(),
            tlp: tlp.to_owned(),
            profiles: HashMap::new(),
            rows: 0,
        };
        let header: Vec<&str> = sink.columns.iter().map(|c| c.name()).collect();
        sink.writer
            .write_record(&header)
            .map_err(|e| csv_error(&sink.path, e))?;
        Ok(sink)
    }

    fn cell(&self, column: Column, indicator: &MappedIndicator) -> String {
        let profile = self.profiles.get(&indicator.profile_id);
        match column {
            Column::Value => indicator.value.clone(),
            Column::Type => indicator.observable_type.as_str().to_owned(),
            Column::ProfileId => indicator.profile_id.clone(),
            Column::ProfileTitle => profile.map(|p| p.title.clone()).unwrap_or_default(),
            Column::Kind => profile.map(|p| p.kind.clone()).unwrap_or_default(),
            Column::Source => indicator
                .source
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            Column::FirstSeen => indicator
                .first_seen
                .map(|t| t.to_string())
                .unwrap_or_default(),
            Column::LastSeen => indicator
                .last_seen
                .map(|t| t.to_string())
                .unwrap_or_default(),
            Column::Confidence => indicator
                .confidence
                .map(|c| c.to_string())
                .unwrap_or_default(),
            Column::Tlp => self.tlp.clone(),
            Column::StixId => indicator.stix_id.clone(),
            Column::IndicatorId => indicator.indicator_id.clone(),
        }
    }
}

impl Sink for CsvSink {
    fn begin(&mut self, _preamble: &[EncodedObject]) -> Result<(), SinkError> {
        Ok(())
    }

    fn write(&mut self, record: &Mapped) -> Result<(), SinkError> {
        match record {
            Mapped::Profile(profile) => {
                self.profiles.insert(
                    profile.profile_id.clone(),
                    ProfileFacts {
                        title: profile.title.clone(),
                        kind: profile.kind.as_str().to_owned(),
                    },
                );
                Ok(())
            }
            Mapped::Indicator(indicator) => {
                let cells: Vec<String> = self
                    .columns
                    .iter()
                    .map(|column| neutralize(&self.cell(*column, indicator)).into_owned())
                    .collect();
                self.writer
                    .write_record(&cells)
                    .map_err(|e| csv_error(&self.path, e))?;
                self.rows += 1;
                Ok(())
            }
            // A snapshot lists what is current; a revoked indicator is simply absent.
            Mapped::Revoked(_) => Ok(()),
        }
    }

    fn delivery(&self) -> crate::Delivery {
        crate::Delivery::Snapshot
    }

    fn finish(self: Box<Self>) -> Result<SinkReport, SinkError> {
        let CsvSink {
            path, writer, rows, ..
        } = *self;
        let file = writer
            .into_inner()
            .map_err(|e| SinkError::Other(format!("{}: {}", path.display(), e.error())))?;
        let path = file.commit()?;
        Ok(SinkReport {
            objects: rows,
            files: vec![path.display().to_string()],
            ..SinkReport::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test should panic
mod tests {
    use super::*;
    use ctiport_model::graph::{IndicatorSource, IntelProfile, ProfileKind};
    use ctiport_model::record::{MappedProfile, ObservableType};
    use ctiport_model::timestamp::Timestamp;
    use proptest::prelude::*;
    use std::sync::Arc;

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

    fn records() -> Vec<Mapped> {
        let graph = IntelProfile {
            id: "p1".into(),
            kind: ProfileKind::Actor,
            title: Some("=HYPERLINK(\"http://x\")".into()),
            first_active: None,
            aliases: vec![],
            targets: vec![],
            countries_or_regions: vec![],
            summary: None,
            description: None,
            tradecraft: None,
        };
        let indicator = |id: &str, value: &str| {
            Mapped::Indicator(MappedIndicator {
                indicator_id: id.into(),
                profile_id: "p1".into(),
                observable_type: ObservableType::Url,
                value: value.into(),
                source: Some(IndicatorSource::Microsoft),
                first_seen: Timestamp::parse("2024-01-02T03:04:05Z"),
                last_seen: None,
                confidence: Some(85),
                host: None,
                stix_id: format!("indicator--{id}"),
                objects: vec![],
            })
        };
        vec![
            Mapped::Profile(MappedProfile {
                profile_id: "p1".into(),
                title: "=HYPERLINK(\"http://x\")".into(),
                kind: ProfileKind::Actor,
                indicated_ref: "threat-actor--x".into(),
                profile: Arc::new(graph),
                objects: vec![],
            }),
            indicator("i1", "http://a.example/x,y\"z"),
            indicator("i2", "http://b.example/\r\nnext"),
        ]
    }

    #[test]
    fn writes_rfc4180_rows_with_neutralized_cells() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let mut sink = Box::new(CsvSink::create(&path, &Column::DEFAULT, "amber").unwrap());
        for record in records() {
            sink.write(&record).unwrap();
        }
        assert!(!path.exists());
        let report = sink.finish().unwrap();
        assert_eq!(report.objects, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next(),
            Some(
                "value,type,profile_id,profile_title,kind,source,first_seen,last_seen,confidence,tlp,stix_id"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "\"http://a.example/x,y\"\"z\",url,p1,\"'=HYPERLINK(\"\"http://x\"\")\",actor,microsoft,2024-01-02T03:04:05.000Z,,85,amber,indicator--i1"
            )
        );
        let mut reader = ::csv::Reader::from_path(&path).unwrap();
        let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(&rows[1][0], "http://b.example/\r\nnext");
    }

    #[test]
    fn columns_are_chosen_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let columns = Column::parse_list("stix_id,value").unwrap();
        let mut sink = Box::new(CsvSink::create(&path, &columns, "amber").unwrap());
        for record in records() {
            sink.write(&record).unwrap();
        }
        sink.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("stix_id,value\r\nindicator--i1,\"http://a.example/x,y\"\"z\"\r\n"),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn neutralized_cells_never_start_a_formula_and_keep_the_text(cell in "\\PC{0,30}|[=+\\-@\t\r].{0,20}") {
            let out = neutralize(&cell);
            let first = out.chars().next();
            prop_assert!(!matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')));
            // Either unchanged, or exactly one leading quote added.
            prop_assert!(out == cell || out.strip_prefix('\'') == Some(cell.as_str()));
            if out != cell {
                prop_assert!(matches!(cell.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r')));
            }
        }
    }
}
